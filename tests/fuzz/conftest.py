"""The fuzz suite: every public entry takes whatever the strategies give, and must answer
with a valid result, or a ValueError / TypeError / MemoryError whose message names what
is wrong; never a crash, a numba or torch traceback, or non-finite output from finite
input. Entries that could take the process down run in a child process
(``crash_prone_cases.py``). ``_property.py`` holds the property and the profiles.
"""

from _property import PROFILE, TALLY


def pytest_terminal_summary(terminalreporter):
    if TALLY:
        results = sum(v for (_, kind), v in TALLY.items() if kind == "result")
        errors = sum(v for (_, kind), v in TALLY.items() if kind == "error")
        terminalreporter.write_line(
            f"fuzz ({PROFILE}, this process): {results + errors} cases, {results} valid "
            f"results, {errors} clear errors")
        for entry in sorted({e for e, _ in TALLY}):
            terminalreporter.write_line(
                f"  {entry}: {TALLY[(entry, 'result')]} results, "
                f"{TALLY[(entry, 'error')]} clear errors")
