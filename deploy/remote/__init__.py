"""Remote execution: the executor (SSH and the recorder), host facts, the shell command builders."""
