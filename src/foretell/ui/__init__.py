"""The dashboard (`/ui` on `foretell serve`, and `foretell ui`): pages drawn from JSON documents over the same
registry, job history, store, ledger and metrics as the CLI; see docs/ui.md."""

from foretell.ui.app import UI_PREFIX, dashboard_app
from foretell.ui.live import LiveSampler
from foretell.ui.mount import with_dashboard
from foretell.ui.pages import PAGES, Pages

__all__ = ["PAGES", "UI_PREFIX", "LiveSampler", "Pages", "dashboard_app", "with_dashboard"]
