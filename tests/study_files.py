"""What test harnesses read from a finished study run: its store folder and its state, through the run
repository (the only reader of state.json). Mixed into the harnesses' run records, which have `spec` and
`run_id` fields."""
from __future__ import annotations


class RunFiles:
    spec: object
    run_id: str

    @property
    def store(self):
        from cerebro_ops import study
        return study.repository(self.spec, self.run_id).store

    @property
    def state(self) -> dict:
        from cerebro_ops import study
        return study.load_state(self.spec, self.run_id)
