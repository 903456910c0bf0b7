"""The facade the CLI (and most users) call: load, register, predict, batch, serve, advise, the ledger, the demo.

Everything here reads settings at the edge (`FORETELL_HOME` and the other variables in
`environment`) and hands plain objects down; the layers below never look at the environment.

One module per theme, each a few thin verbs. A new theme is a new module here whose verbs
are imported below and listed in `__all__`. Every CLI command imports this package, so a
module imports at its top only the standard library, `foretell.config`, `foretell.errors`
and its siblings: the registry, the models, numpy and Arrow are imported inside the verbs
(`tests/integration/test_cli_imports.py` checks it).
"""

from foretell.api.advice import advice_report, advise, advise_seconds, advise_workload
from foretell.api.advice_ledger import advice_config, advise_from_ledger, ledger_advice_report
from foretell.api.batch import batch_job, batch_jobs, resume_batch, run_batch, schedule_book, scheduler
from foretell.api.demo import demo_init
from foretell.api.domains import domain_options
from foretell.api.entities import entity_tables, get_entity, load_entities
from foretell.api.environment import API_KEY_ENV as API_KEY_ENV
from foretell.api.environment import LEDGER_ENV as LEDGER_ENV
from foretell.api.environment import STORE_URL_ENV as STORE_URL_ENV
from foretell.api.events import consume_events, events_stats
from foretell.api.inputs import InputFormat, read_input
from foretell.api.keys import create_key, list_keys, revoke_key
from foretell.api.ledger import ledger_export, ledger_history, ledger_location, ledger_stats, load_labels
from foretell.api.models import (
    compile_model,
    delete_version,
    get_registry,
    list_models,
    list_versions,
    load,
    production_uris,
    profile_model,
    propose_domains,
    register,
    set_alias,
    show,
    stored_profile,
)
from foretell.api.monitor import monitor, monitor_report, monitor_thresholds
from foretell.api.rollout import rollout_abort, rollout_promote, rollout_start, rollout_status
from foretell.api.serving import create_server_app, dashboard, serve, serve_config

__all__ = [
    "InputFormat",
    "advice_config",
    "advice_report",
    "advise",
    "advise_from_ledger",
    "advise_seconds",
    "advise_workload",
    "batch_job",
    "batch_jobs",
    "compile_model",
    "consume_events",
    "create_key",
    "create_server_app",
    "dashboard",
    "delete_version",
    "demo_init",
    "domain_options",
    "entity_tables",
    "events_stats",
    "get_entity",
    "get_registry",
    "ledger_advice_report",
    "ledger_export",
    "ledger_history",
    "ledger_location",
    "ledger_stats",
    "list_keys",
    "list_models",
    "list_versions",
    "load",
    "load_entities",
    "load_labels",
    "monitor",
    "monitor_report",
    "monitor_thresholds",
    "production_uris",
    "profile_model",
    "propose_domains",
    "read_input",
    "register",
    "resume_batch",
    "revoke_key",
    "rollout_abort",
    "rollout_promote",
    "rollout_start",
    "rollout_status",
    "run_batch",
    "schedule_book",
    "scheduler",
    "serve",
    "serve_config",
    "set_alias",
    "show",
    "stored_profile",
]
