"""Push: the artifact and wheels, the setup/push/rollback plans, rollout, the lock's step guard, the log."""
