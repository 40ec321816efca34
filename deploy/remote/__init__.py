"""Remote execution: the executor (SSH and the recorder), host facts, shell command builders, host programs."""
