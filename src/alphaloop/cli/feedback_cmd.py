"""(being built)"""

COMMANDS: list = []
ML_COMMANDS: list = []  # attached under `alphaloop ml`
