"""The Celery app the production workers run (`maskops worker` starts `celery -A resources.celery_app worker`):
dagster-celery's step task, with the broker, backend and settings of resources.execution."""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from maskops.settings import Settings
from resources.execution import CELERY_APP_CONFIG

settings = Settings.from_env()
app = make_app(
    CeleryExecutor.for_cli(
        broker=settings.services.celery_broker, backend=settings.services.celery_backend, config_source=CELERY_APP_CONFIG
    ).app_args()
)
execute_plan = create_task(app)
