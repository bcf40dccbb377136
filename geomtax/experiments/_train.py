"""Training: one jitted AdamW step, best-validation checkpoint, Jacobian penalty, resume.

Definitions: docs/reference/models.md#training (optimiser, schedule, clipping, best-validation
restore) and docs/reference/models.md#ablations (Hutchinson Jacobian penalty, every ``n``-th
step).
"""

import functools
import hashlib
import math
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .._errors import check_choice
from ..models._heads import SequenceModel, sequence_loss


class TrainConfig(eqx.Module):
    r"""Optimiser and loop settings (all static: changing one recompiles the step).

    Defaults are the reference (docs/reference/models.md#training): AdamW, learning rate
    :math:`3\times10^{-4}` with cosine decay to 0 over ``num_epochs * steps_per_epoch`` steps
    (drop-last batches), weight decay 0.01, global-norm clipping at 1.0, batch 64, 20 epochs.

    Attributes:
        num_epochs: passes over the training set.
        batch_size: sequences per step.
        learning_rate: peak AdamW learning rate.
        weight_decay: decoupled AdamW weight decay.
        clip_norm: global gradient-norm clip.
        jacobian_lambda: weight :math:`\lambda` of the Jacobian penalty (0 = off).
        jacobian_every: the penalty is added on every ``jacobian_every``-th step (reference 4).
        jacobian_reduction: ``"mean"`` (:func:`jacobian_penalty_mean`, reference parity) or
            ``"fro"`` (:func:`jacobian_penalty_fro`).

    Examples:
        >>> from geomtax.experiments import TrainConfig
        >>> TrainConfig(num_epochs=2).batch_size
        64
    """

    num_epochs: int = eqx.field(static=True, default=20)
    batch_size: int = eqx.field(static=True, default=64)
    learning_rate: float = eqx.field(static=True, default=3e-4)
    weight_decay: float = eqx.field(static=True, default=0.01)
    clip_norm: float = eqx.field(static=True, default=1.0)
    jacobian_lambda: float = eqx.field(static=True, default=0.0)
    jacobian_every: int = eqx.field(static=True, default=4)
    jacobian_reduction: str = eqx.field(static=True, default="mean")

    def __check_init__(self):
        if self.num_epochs < 1 or self.batch_size < 1 or self.jacobian_every < 1:
            raise ValueError(
                "num_epochs, batch_size and jacobian_every must be >= 1; got "
                f"{self.num_epochs}, {self.batch_size}, {self.jacobian_every}"
            )
        if self.jacobian_lambda < 0:
            raise ValueError(f"jacobian_lambda must be >= 0, got {self.jacobian_lambda}")
        check_choice("jacobian_reduction", self.jacobian_reduction, ("mean", "fro"))


class TrainLog(eqx.Module):
    """Per-epoch training history (arrays only).

    Attributes:
        train_loss: mean training loss of each epoch (without the penalty), shape ``(E,)``.
        val_loss: validation loss after each epoch, shape ``(E,)``.
        steps_per_second: training throughput of each epoch, shape ``(E,)``.
        best_epoch: 0-based epoch whose parameters were kept (lowest validation loss).
    """

    train_loss: jax.Array
    val_loss: jax.Array
    steps_per_second: jax.Array
    best_epoch: jax.Array


def _hutchinson_vjp(fn, x, key):
    y, pullback = jax.vjp(fn, x)
    v = jax.random.normal(key, y.shape, y.dtype)
    (vjp,) = pullback(v)
    return vjp


def jacobian_penalty_mean(
    fn: Callable[[jax.Array], jax.Array], x: jax.Array, *, key: jax.Array
) -> jax.Array:
    r"""Element-averaged Hutchinson estimate of the squared Jacobian (reference parity).

    .. math:: \widehat P = \operatorname{mean}\big((v^\top J)^2\big),\quad v\sim\mathcal N(0, I),
       \quad J = \partial\, \mathrm{fn}(x) / \partial x,

    the mean taken over the elements of ``x``; so :math:`\mathbb E\,\widehat P =
    \lVert J\rVert_F^2 / \mathrm{size}(x)`. One probe; :math:`v^\top J` comes from ``jax.vjp``,
    and differentiating the result is a double backward pass.

    Args:
        fn: differentiable map (e.g. input embedding -> final hidden states).
        x: point of evaluation.
        key: PRNG key for the probe.

    Returns:
        Scalar :math:`\widehat P` with expectation :math:`\lVert J\rVert_F^2 / \mathrm{size}(x)`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from geomtax.experiments import jacobian_penalty_mean
        >>> x = jnp.ones(4)
        >>> float(jacobian_penalty_mean(lambda z: 0 * z, x, key=jax.random.key(0)))
        0.0
    """
    return jnp.mean(_hutchinson_vjp(fn, x, key) ** 2)


def jacobian_penalty_fro(
    fn: Callable[[jax.Array], jax.Array], x: jax.Array, *, key: jax.Array
) -> jax.Array:
    r"""Unbiased Hutchinson estimate of the squared Frobenius norm of the Jacobian.

    .. math:: \widehat P = \sum (v^\top J)^2,\qquad \mathbb E\,\widehat P = \lVert J\rVert_F^2.

    For a batch whose rows are processed independently, divide by the batch size for a
    per-sequence value (the training loop does).

    Args:
        fn: differentiable map.
        x: point of evaluation.
        key: PRNG key for the probe.

    Returns:
        Scalar :math:`\widehat P`, unbiased for :math:`\lVert J\rVert_F^2` (not averaged).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from geomtax.experiments import jacobian_penalty_fro
        >>> est = jax.vmap(lambda k: jacobian_penalty_fro(lambda z: 3 * z, jnp.ones(5), key=k))
        >>> round(float(est(jax.random.split(jax.random.key(0), 4000)).mean()) / 45, 1)
        1.0
    """
    return jnp.sum(_hutchinson_vjp(fn, x, key) ** 2)


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """Global-norm clipping followed by AdamW with a cosine-decayed learning rate.

    Args:
        config: training settings.
        total_steps: length of the cosine schedule (epochs x steps per epoch).

    Returns:
        An optax transformation.

    Examples:
        >>> from geomtax.experiments import TrainConfig, make_optimizer
        >>> opt = make_optimizer(TrainConfig(), 100)
    """
    schedule = optax.cosine_decay_schedule(config.learning_rate, max(int(total_steps), 1))
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(schedule, weight_decay=config.weight_decay),
    )


def _penalty(model: SequenceModel, tokens, key, config: TrainConfig):
    enc = model.encoder
    h0 = enc.embed_tokens(tokens[:, :-1])
    k_drop, k_probe = jax.random.split(key)

    def fn(h):
        return enc.encode(h, key=k_drop)

    if config.jacobian_reduction == "mean":
        return jacobian_penalty_mean(fn, h0, key=k_probe)
    return jacobian_penalty_fro(fn, h0, key=k_probe) / tokens.shape[0]


def make_train_step(
    graphdef: nnx.GraphDef, config: TrainConfig, optimizer: optax.GradientTransformation
) -> Callable:
    """Build the jitted step ``(params, rest, opt_state, tokens, values, key, step) -> ...``.

    One compiled region: forward, loss (plus the Jacobian penalty on every
    ``config.jacobian_every``-th step, selected with ``lax.cond``), gradient and optax update.
    Returns ``(params, opt_state, loss)``; the loss excludes the penalty.

    Args:
        graphdef: the model's graph definition from ``nnx.split(model, nnx.Param, ...)``.
        config: training settings.
        optimizer: an optax transformation.

    Returns:
        A ``jax.jit``-compiled function.
    """
    use_penalty = config.jacobian_lambda > 0

    def loss_fn(params, rest, tokens, values, key, step):
        model = nnx.merge(graphdef, params, rest)
        k_drop, k_pen = jax.random.split(key)
        loss = sequence_loss(model, tokens, values, key=k_drop)
        total = loss
        if use_penalty:
            pen = jax.lax.cond(
                step % config.jacobian_every == 0,
                lambda: _penalty(model, tokens, k_pen, config),
                lambda: jnp.zeros((), loss.dtype),
            )
            total = loss + config.jacobian_lambda * pen
        return total, loss

    @jax.jit
    def step_fn(params, rest, opt_state, tokens, values, key, step):
        (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, rest, tokens, values, key, step
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss

    return step_fn


@functools.lru_cache(maxsize=8)
def _cached_step(graphdef, config: TrainConfig, total_steps: int):
    """One compiled step per (model structure, config, schedule length).

    A resumed or repeated ``train`` call reuses the executable instead of recompiling.
    """
    return make_train_step(graphdef, config, make_optimizer(config, total_steps))


@functools.lru_cache(maxsize=8)
def make_eval_loss(graphdef):
    """Jitted deterministic mean loss ``(params, rest, tokens, values) -> scalar``."""

    @jax.jit
    def eval_fn(params, rest, tokens, values):
        return sequence_loss(nnx.merge(graphdef, params, rest), tokens, values)

    return eval_fn


def _leaves_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 (first 16 hex digits) of the saved arrays: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _notify(log: Callable[[str], None] | None, message: str) -> None:
    if log is None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
        log(message)


class _Checkpointer:
    """Orbax checkpoints of the full training state, one per finished epoch (last two kept).

    Each step's metadata holds a checksum of its arrays, so a checkpoint that restores but holds
    other bytes than were saved is caught too (checkpoints written before 0.2 have none).
    """

    _DIGEST = "_leaves_sha256"

    def __init__(self, directory: str | Path):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
        )

    def latest(self):
        return self.manager.latest_step()

    def save(self, epoch: int, leaves: list, meta: dict) -> None:
        ocp = self._ocp
        arrays = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}
        meta = {**meta, self._DIGEST: _leaves_digest(arrays)}
        self.manager.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)
            ),
        )
        self.manager.wait_until_finished()

    def restore(self, epoch: int, like: list) -> tuple[list, dict]:
        ocp = self._ocp
        target = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(like)}
        out = self.manager.restore(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
            ),
        )
        arrays = {k: np.asarray(out["state"][k]) for k in target}
        meta = dict(out["meta"])
        digest = meta.pop(self._DIGEST, None)
        if digest is not None and digest != _leaves_digest(arrays):
            raise ValueError("its arrays do not match the checksum saved with them")
        leaves = [jnp.asarray(arrays[f"leaf_{i:05d}"]) for i in range(len(like))]
        return leaves, meta

    def _move_aside(self, step: int) -> Path | None:
        """Move the step folder to ``<directory>.corrupt/`` (kept for inspection, not deleted)."""
        folder = self.directory / str(step)
        if not folder.exists():
            return None
        aside = self.directory.with_name(self.directory.name + ".corrupt")
        aside.mkdir(parents=True, exist_ok=True)
        target, n = aside / str(step), 1
        while target.exists():
            target, n = aside / f"{step}.{n}", n + 1
        shutil.move(str(folder), str(target))
        return target

    def restore_latest_good(
        self, like: list, log: Callable[[str], None] | None = None
    ) -> tuple[list, dict] | None:
        """Restore the newest step that restores and checks; ``None`` if none does.

        A step that fails is moved aside (:meth:`_move_aside`) with a one-line notice, and the
        previous step is tried.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        for i, step in enumerate(steps):
            try:
                return self.restore(step, like)
            except Exception as err:  # orbax raises many kinds on damaged files
                moved = self._move_aside(step)
                self.manager.reload()
                reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                then = (
                    f"falling back to step {steps[i + 1]}"
                    if i + 1 < len(steps)
                    else "no earlier checkpoint; training this cell from the start"
                )
                where = f" (moved to {moved})" if moved is not None else ""
                _notify(
                    log,
                    f"checkpoint {self.directory} step {step} does not restore ({reason})"
                    f"{where}; {then}",
                )
        return None

    def close(self) -> None:
        self.manager.close()


def _batches_for_eval(n: int, batch_size: int) -> list[tuple[int, int]]:
    size = min(batch_size, n)
    return [(s, s + size) for s in range(0, n - size + 1, size)]


def train(
    model: SequenceModel,
    train_tokens: jax.Array,
    train_values: jax.Array,
    val_tokens: jax.Array,
    val_values: jax.Array,
    *,
    config: TrainConfig,
    key: jax.Array,
    checkpoint_dir: str | Path | None = None,
    callback: Callable[[int, SequenceModel], dict[str, float]] | None = None,
    progress: bool = False,
    description: str = "train",
    log: Callable[[str], None] | None = None,
) -> tuple[SequenceModel, TrainLog, list[dict[str, float]]]:
    r"""Train ``model`` and return its best-validation copy, the log and callback records.

    Each epoch shuffles the training set (permutation drawn from ``fold_in(key, epoch)``),
    takes ``n_train // batch_size`` steps (drop-last) with the jitted step of
    :func:`make_train_step`, computes the validation loss, keeps the parameters with the lowest
    validation loss, calls ``callback(epoch, model)`` (e.g. the distortion trajectory of
    docs/reference/rate-distortion.md#scaling-law) and, with ``checkpoint_dir``, saves the
    whole state with orbax-checkpoint. A later call with the same ``checkpoint_dir`` resumes
    after the last saved epoch and gives the same result as an uninterrupted run (all
    randomness is derived from ``key`` and the epoch/step indices).

    Args:
        model: the freshly initialised model (not modified).
        train_tokens: int ``(n_train, L)``.
        train_values: float ``(n_train, L)`` continuous targets in [0, 1] (used by the MSE head).
        val_tokens: int ``(n_val, L)``.
        val_values: float ``(n_val, L)``.
        config: optimiser and loop settings.
        key: PRNG key (shuffling and dropout).
        checkpoint_dir: where to save/resume the training state (``None`` = no checkpoints).
        callback: ``(epoch, current model) -> dict of floats``, called after every epoch.
        progress: show a tqdm bar with loss and throughput.
        description: label of the progress bar.
        log: receives a one-line notice when a checkpoint does not restore (``None``: a
            ``RuntimeWarning``). The last two epochs are kept; a damaged latest one is moved to
            ``<checkpoint_dir>.corrupt/`` and the previous one is used; if none restores,
            training starts from epoch 0.

    Returns:
        ``(best model, TrainLog, callback records)``.

    Raises:
        ValueError: if there are fewer training sequences than ``batch_size``, no validation
            sequences, or mismatched shapes.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, SequenceModel
        >>> from geomtax.experiments import TrainConfig, train
        >>> cfg = EncoderConfig("lstm", d_model=8, num_layers=1, vocab_size=4, dropout=0.0)
        >>> m = SequenceModel(cfg, head="ce", rngs=nnx.Rngs(0))
        >>> tok = jnp.zeros((8, 6), jnp.int32)
        >>> val = jnp.zeros((8, 6))
        >>> best, log, _ = train(m, tok, val, tok, val, config=TrainConfig(num_epochs=2,
        ...                      batch_size=4), key=jax.random.key(0))
        >>> log.val_loss.shape
        (2,)
    """
    for name, arr in (("train_tokens", train_tokens), ("val_tokens", val_tokens)):
        if jnp.ndim(arr) != 2:
            raise ValueError(f"{name} must have shape (n, L); got {jnp.shape(arr)}")
    if jnp.shape(train_values) != jnp.shape(train_tokens):
        raise ValueError(
            f"train_values shape {jnp.shape(train_values)} != train_tokens shape "
            f"{jnp.shape(train_tokens)}"
        )
    if jnp.shape(val_values) != jnp.shape(val_tokens):
        raise ValueError(
            f"val_values shape {jnp.shape(val_values)} != val_tokens shape {jnp.shape(val_tokens)}"
        )
    n_train, n_val = int(train_tokens.shape[0]), int(val_tokens.shape[0])
    if n_train < config.batch_size:
        raise ValueError(
            f"the training set has {n_train} sequences, fewer than batch_size="
            f"{config.batch_size}; use more data or a smaller batch"
        )
    if n_val < 1:
        raise ValueError("the validation set is empty")
    steps_per_epoch = n_train // config.batch_size
    total_steps = steps_per_epoch * config.num_epochs
    optimizer = make_optimizer(config, total_steps)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = optimizer.init(params)
    best_params = params
    step_fn = _cached_step(graphdef, config, total_steps)
    eval_fn = make_eval_loss(graphdef)
    train_tokens = jnp.asarray(train_tokens)
    train_values = jnp.asarray(train_values, jnp.float32)
    val_tokens = jnp.asarray(val_tokens)
    val_values = jnp.asarray(val_values, jnp.float32)

    history: dict[str, Any] = {
        "train_loss": [],
        "val_loss": [],
        "steps_per_second": [],
        "best_epoch": -1,
        "best_val": math.inf,
        "records": [],
    }
    start_epoch = 0
    ckpt = _Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    state_like = [params, opt_state, best_params]
    treedef = jax.tree.structure(state_like)
    if ckpt is not None and ckpt.latest() is not None:
        restored = ckpt.restore_latest_good(jax.tree.leaves(state_like), log)
        if restored is not None:
            leaves, history = restored
            params, opt_state, best_params = jax.tree.unflatten(treedef, leaves)
            start_epoch = len(history["train_loss"])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, desc=description)
    try:
        for epoch in range(start_epoch, config.num_epochs):
            ekey = jax.random.fold_in(key, epoch)
            k_perm, ekey = jax.random.split(ekey)
            perm = jax.random.permutation(k_perm, n_train)
            losses = []
            t0 = time.perf_counter()
            for s in range(steps_per_epoch):
                idx = perm[s * config.batch_size : (s + 1) * config.batch_size]
                global_step = epoch * steps_per_epoch + s
                params, opt_state, loss = step_fn(
                    params,
                    rest,
                    opt_state,
                    train_tokens[idx],
                    train_values[idx],
                    jax.random.fold_in(ekey, s),
                    jnp.asarray(global_step, jnp.int32),
                )
                losses.append(loss)
                if bar is not None and (s % 10 == 9 or s == steps_per_epoch - 1):
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{float(loss):.4f}", steps_s=f"{(s + 1) / elapsed:.1f}")
                    bar.update(s + 1 - bar.n + epoch * steps_per_epoch)
            train_loss = float(jnp.mean(jnp.stack(losses)))
            sps = steps_per_epoch / max(time.perf_counter() - t0, 1e-9)
            val = [
                float(eval_fn(params, rest, val_tokens[a:b], val_values[a:b]))
                for a, b in _batches_for_eval(n_val, config.batch_size)
            ]
            val_loss = float(np.mean(val))
            history["train_loss"].append(train_loss)
            history["val_loss"].append(val_loss)
            history["steps_per_second"].append(sps)
            if val_loss < history["best_val"]:
                history["best_val"], history["best_epoch"] = val_loss, epoch
                best_params = params
            record = {}
            if callback is not None:
                record = {
                    k: float(v)
                    for k, v in callback(epoch, nnx.merge(graphdef, params, rest)).items()
                }
            history["records"].append(record)
            if ckpt is not None:
                ckpt.save(epoch, jax.tree.leaves([params, opt_state, best_params]), history)
    finally:
        if bar is not None:
            bar.close()
        if ckpt is not None:
            ckpt.close()

    log = TrainLog(
        train_loss=jnp.asarray(history["train_loss"], jnp.float32),
        val_loss=jnp.asarray(history["val_loss"], jnp.float32),
        steps_per_second=jnp.asarray(history["steps_per_second"], jnp.float32),
        best_epoch=jnp.asarray(history["best_epoch"], jnp.int32),
    )
    return nnx.merge(graphdef, best_params, rest), log, list(history["records"])
