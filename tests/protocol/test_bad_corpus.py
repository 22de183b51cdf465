"""The bad-file corpus: every file gives exit 2 and one line naming the file and the field.

All corpus files go through ONE real ``lllt protocol check`` process (a process costs ~0.3 s)
against the reference cap, with ``--json``: stdout must be one JSON document with an
invalid entry per file, stderr exactly one ``error: FILE: FIELD: ...`` line per file and no
traceback. The 10 MB file is generated in a temporary directory, never committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._support import BAD, assert_no_traceback, run_lllt

# file -> (field named in the error, a word of the message). "" = the file as a whole.
EXPECTED: dict[str, tuple[str, str]] = {
    "all-and-zone.toml": ("phases[0].zones", "alone"),
    "bad-emit-key.toml": ("phases[0].emit.red", "wavelength such as '655nm'"),
    "bad-id.toml": ("id", "lowercase"),
    "binary-junk.toml": ("", "binary"),
    "blank.yaml": ("", "empty"),
    "duplicate-key.json": ("", "duplicate key 'id'"),
    "duplicate-wavelength.toml": ("phases[0].emit", "same light"),
    "duration-and-fluence.toml": ("phases[0].duration", "both of duration and fluence"),
    "duty-over-100.json": ("phases[0].pulse.duty", "1 to 100 %"),
    "duty-over-100.toml": ("phases[0].pulse.duty", "1 to 100 %"),
    "duty-without-unit.toml": ("phases[0].pulse.duty", "without a unit"),
    "duty-zero.toml": ("phases[0].pulse.duty", "1 to 100 %"),
    "empty-emit.toml": ("phases[0].emit", "empty"),
    "empty.toml": ("", "empty"),
    "fluence-over-device-max.toml": ("phases", "20 J/cm²"),
    "malformed.json": ("", "not valid JSON"),
    "malformed.toml": ("", "not valid TOML"),
    "malformed.yaml": ("", "not valid YAML"),
    "max-duration-too-short.toml": ("phases[0].max_duration", "needs 22.22 min"),
    "missing-format.toml": ("format", "missing"),
    "missing-unit-duration.toml": ("phases[0].duration", "without a unit"),
    "negative-duration.toml": ("phases[0].duration", "more than 0"),
    "negative-fluence.toml": ("phases[0].fluence", "more than 0"),
    "neither-duration-nor-fluence.toml": ("phases[0].duration", "neither"),
    "newer-format.toml": ("format", "upgrade lllt"),
    "no-phases.toml": ("phases", "empty"),
    "not-utf8.toml": ("", "not UTF-8"),
    "number-duration.toml": ("phases[0].duration", "the number 25 without a unit"),
    "over-limit-irradiance.toml": ("phases[0].emit.655nm", "12 mW/cm² is above"),
    "protocol.txt": ("", "unknown file type"),
    "pulse-frequency-too-low.toml": ("phases[0].pulse.frequency", "2 to 10000 Hz"),
    "pulse-frequency-wrong-unit.toml": ("phases[0].pulse.frequency", "which is a time"),
    "ramp-longer-than-duration.toml": ("phases[0].ramp", "longer than the duration"),
    "research-not-bool.yaml": ("research", "true or false"),
    "schedule-count-as-text.toml": ("schedule.max_sessions_per_week", "whole number"),
    "session-too-long.toml": ("phases", "maximum session is 3600 s"),
    "top-level-list.json": ("", "top level"),
    "unknown-channel.toml": ("phases[0].emit.ch12", "no channel ch12"),
    "unknown-format.toml": ("format", "lllt-protocol/1"),
    "unknown-key-limit-in-protocol.toml": ("max_irradiance", "unknown key"),
    "unknown-phase-key.toml": ("phases[0].wavelength", "unknown key"),
    "unknown-schedule-key.toml": ("schedule.max_fluence_per_week", "unknown key"),
    "unknown-wavelength.toml": ("phases[0].emit.810nm", "no 810 nm channel"),
    "unknown-zone.toml": ("phases[0].zones[0]", "no zone 'nape'"),
    "wrong-unit-duration.toml": ("phases[0].duration", "which is a power"),
    "wrong-unit-fluence.toml": ("phases[0].fluence", "which is an energy"),
    "wrong-unit-irradiance-power.toml": ("phases[0].emit.655nm", "which is a power"),
    "wrong-unit.yaml": ("phases[0].emit.655nm", "expected an irradiance"),
    "yaml-alias.yaml": ("", "aliases"),
    "zero-duration.toml": ("phases[0].duration", "more than 0"),
    "zero-irradiance.toml": ("phases[0].emit.655nm", "more than 0"),
    "10mb.toml": ("", "at most 1 MB"),  # generated below
}


def _big_file(directory: Path) -> Path:
    path = directory / "10mb.toml"
    head = 'format = "lllt-protocol/1"\nid = "big"\nname = "big"\nnotes = """\n'
    path.write_text(head + ("x" * 99 + "\n") * 100_000 + '"""\n', encoding="utf-8")
    assert path.stat().st_size > 10_000_000
    return path


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], object]:
    files = sorted(p for p in BAD.iterdir() if p.is_file())
    files.append(_big_file(tmp_path_factory.mktemp("big")))
    result = run_lllt(
        "protocol", "check", *[str(f) for f in files], "--profile", "reference-cap", "--json"
    )
    return files, result


def test_the_corpus_is_large_and_every_file_has_an_expectation(corpus_run) -> None:
    files, _ = corpus_run
    names = {f.name for f in files}
    assert len(names) >= 31  # 30 committed files at least, plus the generated 10 MB one
    assert names == set(EXPECTED), names ^ set(EXPECTED)


def test_exit_code_is_2_and_nothing_crashes(corpus_run) -> None:
    _, result = corpus_run
    assert result.returncode == 2, result.stderr
    assert_no_traceback(result.stderr)


def test_one_stderr_line_per_file_naming_file_and_field(corpus_run) -> None:
    files, result = corpus_run
    lines = result.stderr.splitlines()
    assert len(lines) == len(files), result.stderr
    for path, line in zip(files, lines, strict=True):
        field, words = EXPECTED[path.name]
        prefix = f"error: {path}: " + (f"{field}: " if field else "")
        assert line.startswith(prefix), (prefix, line)
        assert words in line, (words, line)


def test_json_is_one_document_with_an_invalid_entry_per_file(corpus_run) -> None:
    files, result = corpus_run
    entries = json.loads(result.stdout)
    assert [e["file"] for e in entries] == [str(f) for f in files]
    for path, entry in zip(files, entries, strict=True):
        field, _ = EXPECTED[path.name]
        assert entry["valid"] is False
        assert [e["field"] for e in entry["errors"]] == [field], entry["errors"]
        for key in ("id", "total_duration_s", "fluence_j_cm2", "phases"):
            assert key in entry


def test_a_single_bad_file_alone_gives_one_line_and_exit_2() -> None:
    # the plain (table) output mode too, with no device: a unit error needs none
    path = BAD / "wrong-unit-irradiance-power.toml"
    result = run_lllt("protocol", "check", str(path))
    assert result.returncode == 2
    assert_no_traceback(result.stderr)
    assert result.stderr.splitlines() == [
        f"error: {path}: phases[0].emit.655nm: found '3 mW', which is a power; expected an "
        "irradiance with its unit, such as '3 mW/cm^2'"
    ]
