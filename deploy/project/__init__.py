"""The user's project: the static scan of its sources, requirements, `deploy init`, the import inspection."""
