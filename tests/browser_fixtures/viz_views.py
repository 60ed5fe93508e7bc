# The notebook that tests/test_browser.py opens in JupyterLab and Notebook 7 (percent format; the
# test writes it as an .ipynb into a temporary server root). It shows the three views of
# lessons_lib.viz.

# %%
import numpy as np

from lessons_lib import thread
from lessons_lib.viz import AttentionExplorer, PositionalExplorer, SoftmaxExplorer

state = thread.forward()

# %%
att = AttentionExplorer(
    state["weights"],
    thread.SENTENCE,
    heads=[0],
    title='the thread, "to be or not to be": attention weights',
)
att

# %%
article_Q = np.array([[0, 7, 18], [15, 31, 51], [36, 59, 82]])
sm = SoftmaxExplorer(
    article_Q @ article_Q.T,
    d_k=3,
    labels=["key 1", "key 2", "key 3"],
    title="the article's worked example (section 4.3)",
)
sm

# %%
pe = PositionalExplorer(32, 16)
pe

# %%
print(f"python sees: query={att.query} heads={att.heads} d_k={sm.d_k} position={pe.position}")
