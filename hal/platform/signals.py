"""The signal C module itself, not signal.py, which imports enum (~0.8 MB resident) to wrap the constants.

Its own module, apart from sluice.hal.net.sockets: MicroPython has no signal module, and its sockets must not
depend on one.
"""

try:
    import _signal as signal
except ImportError:  # an interpreter without `_signal`
    import signal
