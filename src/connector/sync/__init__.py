"""The pure sync core: mapping, diff and merge, write-back rules. No I/O here."""
