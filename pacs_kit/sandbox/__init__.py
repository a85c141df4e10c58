"""The sandbox: the real stack deployed into an embedded AWS emulator (moto), run end to end."""
