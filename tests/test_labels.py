import numpy as np
import pytest

from maskops.labels import (
    CLASS_NAMES,
    NUM_CLASSES,
    AgeGroup,
    Gender,
    LabelError,
    MaskState,
    age_group,
    age_group_array,
    decode,
    encode,
    encode_array,
    parse_age,
    parse_gender,
)


def test_all_18_classes_round_trip():
    seen = set()
    for mask in MaskState:
        for gender in Gender:
            for grp in AgeGroup:
                cid = encode(mask, gender, grp)
                assert decode(cid) == (mask, gender, grp)
                seen.add(cid)
    assert seen == set(range(NUM_CLASSES))


def test_encoding_matches_the_competition():
    # class = 6*mask + 3*gender + age: wear/male/<30 = 0, not-wear/female/>=60 = 17
    assert encode(MaskState.WEAR, Gender.MALE, AgeGroup.YOUNG) == 0
    assert encode(MaskState.INCORRECT, Gender.FEMALE, AgeGroup.MIDDLE) == 10
    assert encode(MaskState.NOT_WEAR, Gender.FEMALE, AgeGroup.OLD) == 17
    assert CLASS_NAMES[10] == "incorrect/female/30-59"
    assert len(set(CLASS_NAMES)) == NUM_CLASSES


@pytest.mark.parametrize(("age", "group"), [(0, 0), (29, 0), (30, 1), (59, 1), (60, 2), (95, 2)])
def test_age_group_boundaries(age, group):
    assert age_group(age) == group
    assert age_group_array(np.array([age]))[0] == group


def test_vectorised_encode_agrees():
    ids = np.arange(NUM_CLASSES)
    parts = np.array([decode(c) for c in ids])
    assert (encode_array(parts[:, 0], parts[:, 1], parts[:, 2]) == ids).all()


@pytest.mark.parametrize("bad", [-1, 18, 100])
def test_decode_rejects_out_of_range(bad):
    with pytest.raises(LabelError, match=r"outside 0\.\.17"):
        decode(bad)


def test_parsers_explain_bad_values():
    assert parse_gender(" Female ") is Gender.FEMALE
    assert parse_age("45") == 45
    with pytest.raises(LabelError, match="unknown gender 'mal'"):
        parse_gender("mal")
    with pytest.raises(LabelError, match="not an integer"):
        parse_age("4x")
    with pytest.raises(LabelError, match="impossible"):
        parse_age("200")
    with pytest.raises(ValueError):
        encode(3, 0, 0)
