"""Remote execution: the executor (SSH, the recorder), host facts, command builders, host programs."""
