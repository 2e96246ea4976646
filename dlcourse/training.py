"""Fast training on any Keras backend: the backend- and device-specific half of a GPU recipe.

Introduced in lesson 06 (section "Training fast on a GPU").  The recipe itself (big
batches, a warmed-up learning rate) is the same everywhere; what it takes to feed the
data, to compute in mixed precision and to compile differs between TensorFlow, JAX and
PyTorch and between a GPU and a CPU.  ``fast_fit_options()`` makes those choices, so
one piece of code trains well on all of them::

    fast = dlc.training.fast_fit_options()
    print(fast.describe())                          # what was chosen, and why
    with fast.precision():                          # mixed_float16 on a GPU that gains from it
        model = fast.float32_output(build_model())  # the softmax stays float32
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      jit_compile=fast.jit_compile)
    model.fit(**fast.fit_data(x, y, batch_size=1024), epochs=3)

Nothing here imports a backend library before one of these functions runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from . import device as _device

__all__ = ["FastFitOptions", "fast_fit_options", "float32_output"]


@dataclass(frozen=True)
class FastFitOptions:
    """The choices for training fast with this Keras backend on this machine.

    - ``backend``: ``"tensorflow"``, ``"jax"`` or ``"torch"``.
    - ``device``: where Keras trains, e.g. ``"gpu:0 (NVIDIA H100 80GB HBM3)"`` or ``"cpu"``;
      ``on_gpu`` says which of the two.
    - ``policy``: the Keras dtype policy, ``"mixed_float16"`` or ``"float32"``.
    - ``jit_compile``: what to pass to ``model.compile(jit_compile=...)``.
    - ``pipeline``: ``"tf.data"`` (a ``tf.data.Dataset`` that prepares batches in the
      background) or ``"arrays"`` (NumPy arrays, batched by Keras's own loader).
    - ``reasons``: one sentence per choice, for ``describe()``.
    """

    backend: str
    device: str
    on_gpu: bool
    policy: str
    jit_compile: bool
    pipeline: str
    reasons: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """The choices as a few lines of text."""
        head = (
            f"Fast training on {_device.BACKENDS.get(self.backend, self.backend)}, {self.device}: "
            f"policy {self.policy}, jit_compile={self.jit_compile}, input pipeline {self.pipeline}"
        )
        return "\n".join([head, *(f"  - {r}" for r in self.reasons)])

    def precision(self):
        """A context in which new layers use ``policy``; the previous global policy comes back after it.

        Build and compile the model inside it: a layer takes its policy when it is
        created, and ``compile`` adds loss scaling under ``mixed_float16``.
        """
        return _policy(self.policy)

    def float32_output(self, model):
        """``float32_output(model)``: the model's output layers compute in float32 (see there)."""
        return float32_output(model)

    def fit_data(self, x, y, batch_size: int, *, seed: int | None = None) -> dict:
        """Keyword arguments for ``model.fit`` that feed ``x`` (N, ...) and ``y`` (N,) in shuffled batches.

        TensorFlow: ``{"x": dataset, "shuffle": False}``, a ``tf.data`` pipeline that shuffles
        every epoch, batches and prefetches (prepares the next batches while the device
        trains); ``shuffle=False`` only tells ``fit`` not to shuffle it again.  JAX
        and PyTorch: ``{"x": x, "y": y, "batch_size": batch_size, "shuffle": True}``;
        Keras's own loader batches the arrays and moves each batch to the device.
        """
        if self.pipeline == "tf.data":
            tf = _device._tf()
            data = (
                tf.data.Dataset.from_tensor_slices((x, y))
                .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
                .batch(batch_size)
                .prefetch(tf.data.AUTOTUNE)
            )
            return {"x": data, "shuffle": False}  # the Dataset shuffles itself
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}


@contextlib.contextmanager
def _policy(name: str):
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def _output_layers(model) -> list:
    outputs = getattr(model, "outputs", None) or []
    layers = []
    for tensor in outputs:
        history = getattr(tensor, "_keras_history", None)
        op = getattr(history, "operation", None)
        if op is not None and op not in layers:
            layers.append(op)
    return layers or model.layers[-1:]


def float32_output(model):
    """Make the layers that produce ``model``'s outputs compute in float32; returns ``model``.

    Under ``mixed_float16`` every layer computes in float16, the softmax too, whose
    small probabilities and the loss computed from them lose precision.  This gives the
    output layers the ``float32`` policy, exactly as if they had been created with
    ``dtype="float32"`` (``Dense(10, activation="softmax", dtype="float32")``): their
    inputs are cast up and they compute and return float32.  It works for Sequential
    and functional models (an output layer that is itself a model is treated the same
    way, recursively); the model is changed in place, weights kept.
    """
    for layer in _output_layers(model):
        if hasattr(layer, "layers") and layer is not model and getattr(layer, "outputs", None):
            float32_output(layer)
        else:
            layer.dtype_policy = "float32"
    return model


def fast_fit_options(found: list | None = None) -> FastFitOptions:
    """Choose the backend- and device-specific parts of fast training.

    ``found`` is the list of GPUs Keras trains on (``dlc.device.gpus()`` when None).

    - Mixed precision (``mixed_float16``) on a GPU of compute capability 7.0 or more,
      where tensor cores run float16 much faster; float32 elsewhere (slower in float16).
    - Compilation: what Keras's ``jit_compile="auto"`` would pick, made explicit: XLA on
      a TensorFlow GPU and not on its CPU (where it made the course's training slower);
      always on JAX (JAX compiles every step; uncompiled it runs op by op); off on
      PyTorch, as "auto" does there (``True`` would mean ``torch.compile``).
    - Input: a ``tf.data`` pipeline on TensorFlow, the arrays as they are on JAX and
      PyTorch (Keras's loader there moves each batch to the device).
    """
    name = _device.backend()
    if name not in _device.BACKENDS:
        raise RuntimeError(_device._unsupported(name))
    if found is None:
        found = _device.gpus()
    gpu = found[0] if found else None
    reasons = []
    if gpu is None:
        where, policy = "cpu", "float32"
        reasons.append("float32: no GPU, and mixed precision is slower on a CPU")
    else:
        where = f"{gpu.device} ({gpu.name})"
        if _device._supports_mixed_precision([gpu]):
            policy = "mixed_float16"
            cc = gpu.compute_capability
            reasons.append(
                f"mixed_float16: compute capability {cc[0]}.{cc[1]} has tensor cores for float16; "
                "weights stay float32, and so does the output layer (float32_output)"
            )
        else:
            policy = "float32"
            reasons.append(
                "float32: mixed precision needs compute capability 7.0 or more "
                f"({gpu.name} reports {gpu.compute_capability or 'none'})"
            )
    if name == "tensorflow":
        jit = gpu is not None
        reasons.append(
            "jit_compile=True: XLA fuses layers into fewer GPU kernels"
            if jit
            else "jit_compile=False: XLA made training on the CPU slower in this course's measurements"
        )
        pipeline = "tf.data"
        reasons.append("tf.data: shuffles, batches and prefetches in the background while the device trains")
    elif name == "jax":
        jit, pipeline = True, "arrays"
        reasons.append("jit_compile=True: JAX compiles each training step with XLA (uncompiled, it runs op by op)")
        reasons.append("arrays: Keras batches the NumPy arrays and copies each batch to the device")
    else:
        jit, pipeline = False, "arrays"
        reasons.append(
            'jit_compile=False: PyTorch runs eagerly, as Keras\'s "auto" does (True would '
            "mean torch.compile, which compiles first: measure before switching it on)"
        )
        reasons.append("arrays: Keras batches the NumPy arrays and copies each batch to the device")
    return FastFitOptions(
        backend=name,
        device=where,
        on_gpu=gpu is not None,
        policy=policy,
        jit_compile=jit,
        pipeline=pipeline,
        reasons=tuple(reasons),
    )
