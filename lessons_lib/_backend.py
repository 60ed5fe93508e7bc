"""TensorFlow and Keras for the modules of ``lessons_lib`` that need them, imported quietly, once.

Every module that builds layers or runs TensorFlow takes them from here::

    from lessons_lib._backend import keras, ops, tf

so TensorFlow's load-time oneDNN notice (written straight to file descriptor 2, where a notebook
would show it as ``stderr``) is dropped, whichever module loads first. The NumPy-only modules
(``tokenizers``, ``data``, ``checks``, ``display``) never import this file: a lesson that only
trains a BPE tokenizer does not wait ~4 s for TensorFlow.
"""

from lessons_lib.env import import_tensorflow_quietly

import_tensorflow_quietly()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

__all__ = ["keras", "ops", "tf"]
