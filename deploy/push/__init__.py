"""Push: the artifact and wheels, the setup/push/rollback step plans, rollout, the app's log."""
