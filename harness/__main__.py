import os
import sys

from .cli import main

code = main()
try:
    sys.stdout.flush()
except BrokenPipeError:  # `tfcompat plan | head`: what is left has no reader
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
sys.exit(code)
