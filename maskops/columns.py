"""What each column of maskops' tables means: one glossary for every manifest, split and label table, shown as the
column descriptions of the assets' schemas in the Dagster catalog."""

from __future__ import annotations

COLUMNS: dict[str, str] = {
    # identity and files
    "image_id": "Image id: '<profile folder>/<stem>' for training images, 'eval/<file>' for evaluation images.",
    "content_hash": "SHA-256 of the image file's bytes: the key of the content-addressed image store.",
    "profile_id": "The profile folder (one person's seven photos), e.g. 000321_female_Asian_25.",
    "person_id": "The person id from train.csv (the profile folder's first field).",
    "stem": "File name without extension: mask1..mask5, incorrect_mask, normal (evaluation: the file name).",
    "path": "Path of the image file, relative to the dataset root.",
    "order": "Row of the image in eval/info.csv (the submission keeps this order).",
    "width": "Image width in pixels.",
    "height": "Image height in pixels.",
    "bytes": "File size in bytes.",
    "readable": "Whether the image decodes; unreadable images are quarantined, never dropped silently.",
    # labels
    "mask": "Mask state: 0 wear, 1 incorrect (on the chin or under the nose), 2 not wear.",
    "gender": "Gender: 0 male, 1 female.",
    "race": "Race as given in train.csv (not used as a label).",
    "age": "Age in years.",
    "age_group": "Age group: 0 <30, 1 30-59, 2 >=60.",
    "class_id": "The competition class 0..17 = 6 x mask + 3 x gender (0 male, 1 female) + age group.",
    "raw_mask": "The mask state as it arrived, before labels/corrections.csv.",
    "raw_gender": "The gender as it arrived, before labels/corrections.csv.",
    "raw_age": "The age as it arrived, before labels/corrections.csv.",
    "raw_age_group": "The age group as it arrived, before labels/corrections.csv.",
    "raw_class_id": "The class as it arrived, before labels/corrections.csv.",
    "label_source": "Where the labels come from: 'raw' (the folder names) or 'corrections.csv'.",
    "correction_reason": "The reason written in labels/corrections.csv for a corrected label.",
    "removal": "Why cleaning removed the image (exclusions.csv reason, unreadable, duplicate of ..., age band).",
    # splits
    "fold": "Cross-validation fold of the profile (all seven photos of a person share it).",
    "role": "'train' or 'validation' in profile_split; shared by every variant.",
    # generated people
    "source_profile_id": "The training profile a generated person was painted from (it shares that profile's fold).",
    "source_image_id": "The image a generated photo was painted from.",
    "generator": "What made a generated photo (name/version); empty for real photos.",
    "generator_params": "The generator's settings for this photo, as JSON (part of its image-store key).",
    # crops
    "crop_key": "Image-store key of the crop: the source hash and everything in the crop recipe.",
    "crop_path": "Where the crop lives in the image store; empty when the image could not be cropped.",
    "crop_recipe": "The crop settings, detector settings and background model that made the crop, as JSON.",
    "face_found": "Whether MTCNN found a face (else the crop is a centre crop: see fallback).",
    "face_prob": "MTCNN's probability of the face it kept.",
    "fallback": "Whether the centre-crop fallback was used (no face, or one found with too little confidence).",
    "box_x0": "Face box, left edge in pixels of the source image.",
    "box_y0": "Face box, top edge in pixels.",
    "box_x1": "Face box, right edge in pixels.",
    "box_y1": "Face box, bottom edge in pixels.",
    # label files and label issues
    "line": "Line of the label file the row came from (the header is line 1).",
    "field": "Which label a correction changes: mask, gender or age.",
    "value": "The corrected value (mask state, gender, or age in years).",
    "reason": "Why, in the reviewer's words.",
    "given": "The label the data has now.",
    "suggested": "The label the out-of-fold models suggest.",
    "flagged": "Whether cleanlab flags the label as a likely error.",
    "p_given": "The out-of-fold models' probability of the given label.",
    "p_suggested": "The out-of-fold models' probability of the suggested label.",
    "score": "cleanlab's label-quality score (low: likely wrong); suspects are ranked by it.",
    "images": "How many of the person's photos the suspect rests on.",
}


def describe(column: str) -> str:
    """The glossary's description of a column ('' for a column it does not know)."""
    return COLUMNS.get(column, "")
