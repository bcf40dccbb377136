"""What survives a crash: torn ``cells.jsonl`` lines and damaged orbax checkpoints (issue 15)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomtax.experiments import TrainConfig, preset_config, run_ablation, train
from geomtax.experiments._records import append_record, load_records
from geomtax.models import EncoderConfig, init_model

L = 8
TINY = EncoderConfig(
    "lstm", d_model=8, num_layers=1, vocab_size=10, max_len=L, dropout=0.1, d_state=4
)


# ---------------------------------------------------------------------------------------------
# cells.jsonl: checksummed lines, torn tails moved aside


def _rec(cell_id, value=0.5):
    return {"cell_id": cell_id, "distortion": value, "trajectory": [0.1, float("nan")]}


def test_torn_tail_is_moved_aside_and_the_next_record_is_intact(tmp_path):
    path = tmp_path / "cells.jsonl"
    append_record(path, _rec("a"))
    line = json.dumps({**_rec("b"), "_sha256": "0" * 16})
    with open(path, "a") as fh:
        fh.write(line[: len(line) // 2])  # a kill in the middle of an append
    notices = []
    done = load_records(path, log=notices.append)
    assert list(done) == ["a"]
    assert len(notices) == 1 and "cells.jsonl.corrupt" in notices[0]
    assert (tmp_path / "cells.jsonl.corrupt").read_text() == line[: len(line) // 2] + "\n"
    append_record(path, _rec("b", 0.25))
    again = load_records(path, log=notices.append)
    assert list(again) == ["a", "b"] and again["b"]["distortion"] == 0.25
    assert len(notices) == 1  # nothing else was torn
    np.testing.assert_equal(again["b"]["trajectory"], [0.1, np.nan])


def test_append_never_glues_onto_a_torn_line(tmp_path):
    path = tmp_path / "cells.jsonl"
    path.write_text('{"cell_id": "a", "dist')  # torn, no newline, not cleaned up first
    append_record(path, _rec("b"))
    with pytest.warns(RuntimeWarning, match="1 torn or corrupt line"):
        done = load_records(path)
    assert list(done) == ["b"]


def test_checksum_mismatch_is_corrupt_and_old_lines_still_read(tmp_path):
    path = tmp_path / "cells.jsonl"
    path.write_text(json.dumps(_rec("old")) + "\n")  # written before checksums
    append_record(path, _rec("new"))
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("0.5", "0.7")  # a flipped digit
    path.write_text("\n".join(lines) + "\n")
    notices = []
    done = load_records(path, log=notices.append)
    assert list(done) == ["old"] and "_sha256" not in done["old"]
    assert len(notices) == 1
    assert load_records(path, log=notices.append) == done and len(notices) == 1
    with pytest.raises(ValueError, match="_sha256"):
        append_record(path, {**_rec("x"), "_sha256": "f"})


# ---------------------------------------------------------------------------------------------
# orbax checkpoints: the last two kept, a damaged latest one falls back to the previous one


class _Interrupt(Exception):
    pass


def _interrupt_at_2(epoch, current):
    if epoch == 2:
        raise _Interrupt
    return {}


def _damage(step_dir):
    for f in sorted(p for p in (step_dir / "state").rglob("*") if p.is_file()):
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damaged", [(1,), (0, 1)], ids=["latest", "all"])
def test_corrupt_checkpoint_falls_back(getkey, tmp_path, damaged):
    values = jax.random.uniform(getkey(), (24, L))
    tokens = jnp.minimum((values * 10).astype(jnp.int32), 9)
    key = getkey()
    cfg = TrainConfig(num_epochs=3, batch_size=8)
    model = init_model(TINY, head="ce", seed=2)
    args = (model, tokens, values, tokens[:8], values[:8])
    _, ref_log, _ = train(*args, config=cfg, key=key)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Interrupt):
        train(*args, config=cfg, key=key, checkpoint_dir=ckpt, callback=_interrupt_at_2)
    assert sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) == [0, 1]
    for step in damaged:
        _damage(ckpt / str(step))
    notices = []
    _, log, _ = train(*args, config=cfg, key=key, checkpoint_dir=ckpt, log=notices.append)
    assert len(notices) == len(damaged), notices
    assert "step 1 does not restore" in notices[0]
    expected = "falling back to step 0" if damaged == (1,) else "from the start"
    assert expected in notices[-1]
    for step in damaged:  # moved aside, not deleted
        assert (tmp_path / "ckpt.corrupt" / str(step)).is_dir()
    np.testing.assert_allclose(log.val_loss, ref_log.val_loss, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# end to end: a torn cells.jsonl loses no cell


@pytest.mark.slow
def test_ablation_resume_after_a_torn_record(tmp_path):
    cfg = preset_config("tiny", architectures=("lstm",), systems=("waveform",))
    run_ablation(cfg, tmp_path, progress=False, log=None, figures=False)
    path = tmp_path / "cells.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 2
    path.write_text(lines[0] + lines[1][: len(lines[1]) // 2])  # killed mid-append
    notices = []
    result = run_ablation(cfg, tmp_path, progress=False, log=notices.append, figures=False)
    assert sum("cells.jsonl.corrupt" in n for n in notices) == 1
    done = load_records(path, log=notices.append)
    assert sorted(done) == sorted(r["cell_id"] for r in result["records"])
    assert len(done) == 2 and len(path.read_text().splitlines()) == 2
