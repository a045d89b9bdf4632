"""Fit the basket model's arrays: vocabulary, popularity prior, Jaccard neighbours, association rules.

Responsibility: counting only (numpy + scipy.sparse); scoring lives in ``scoring``, calibration in
``calibrate``. A fit sees only the baskets its mask selects (the temporal split is the caller's).

Definitions (docs/offers.md): the vocabulary is every SKU in at least ``vocab_min_baskets`` training
baskets (what the model can offer); ``prior[y]`` = share of training baskets holding ``y``;
``C[x, y]`` = training baskets holding both; Jaccard ``J = C / (n_x + n_y - C)`` keeps each item's
``top_n`` strongest neighbours; a rule ``x → y`` has confidence ``C[x, y] / n_x`` and is kept when
``C[x, y] >= rule_min_support`` (``top_n`` per antecedent).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from .data import Baskets


@dataclass(frozen=True)
class Params:
    vocab_min_baskets: int = 20
    top_n: int = 50
    rule_min_support: int = 50
    # chosen on the calibration slice by ``endcap-model tune`` (docs/offers.md, "Evaluation")
    half_life_days: float = 60.0
    shrink_k: float = 2.0
    lam_basket: float = 3.0
    lam_history: float = 0.0
    history_limit: int = 200

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Fitted:
    params: Params
    skus: np.ndarray  # vocabulary SKUs (str)
    vocab_of: np.ndarray  # data item code → vocabulary index, -1 outside it
    prior: np.ndarray  # float64 per vocabulary item
    n_baskets: int  # training baskets
    jac: sp.csr_matrix  # V × V, top_n Jaccard neighbours per row (float32)
    rules: sp.csr_matrix  # V × V, rule confidences (float32)

    @property
    def n_vocab(self) -> int:
        return len(self.skus)


def _top_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` largest entries of each row (ties: lower column first)."""
    indptr, indices, data = m.indptr, m.indices, m.data
    keep_rows, keep_cols, keep_vals = [], [], []
    for r in range(m.shape[0]):
        a, b = indptr[r], indptr[r + 1]
        if a == b:
            continue
        vals, cols = data[a:b], indices[a:b]
        if b - a > n:
            part = np.argpartition(-vals, n - 1)[:n]
            vals, cols = vals[part], cols[part]
        order = np.lexsort((cols, -vals))
        keep_rows.append(np.full(len(order), r, np.int32))
        keep_cols.append(cols[order])
        keep_vals.append(vals[order])
    if not keep_rows:
        return sp.csr_matrix(m.shape, dtype=np.float32)
    out = sp.csr_matrix((np.concatenate(keep_vals).astype(np.float32), (np.concatenate(keep_rows), np.concatenate(keep_cols))),
                        shape=m.shape)
    out.sort_indices()
    return out


def fit(data: Baskets, mask: np.ndarray, params: Params = Params()) -> Fitted:
    """Fit on the baskets where ``mask`` is true.

    Raises:
        ValueError: the mask selects no basket, or no item reaches ``vocab_min_baskets``.
    """
    n_train = int(mask.sum())
    if n_train == 0:
        raise ValueError("no training baskets")
    line_in = mask[data.line_basket()]
    counts = np.bincount(data.items[line_in], minlength=data.n_items)
    vocab = np.flatnonzero(counts >= params.vocab_min_baskets)
    if len(vocab) == 0:
        raise ValueError(f"no item is in {params.vocab_min_baskets} or more training baskets")
    vocab_of = np.full(data.n_items, -1, np.int64)
    vocab_of[vocab] = np.arange(len(vocab))
    prior = counts[vocab] / n_train

    lb = data.line_basket()[line_in]
    li = vocab_of[data.items[line_in]]
    keep = li >= 0
    rows = np.unique(lb[keep], return_inverse=True)[1]
    x = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows, li[keep])), shape=(int(rows.max()) + 1 if len(rows) else 0, len(vocab)))
    co = (x.T @ x).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    n_x = counts[vocab].astype(np.float64)
    r = np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
    c = co.indices
    both = co.data.astype(np.float64)
    # each matrix gets its own index arrays: eliminate_zeros() below edits them in place
    jac = sp.csr_matrix((both / (n_x[r] + n_x[c] - both), c.copy(), co.indptr.copy()), shape=co.shape)
    conf_vals = np.where(both >= params.rule_min_support, both / n_x[r], 0.0)
    conf = sp.csr_matrix((conf_vals, c.copy(), co.indptr.copy()), shape=co.shape)
    conf.eliminate_zeros()
    return Fitted(params, data.skus[vocab], vocab_of, prior, n_train,
                  _top_per_row(jac, params.top_n), _top_per_row(conf, params.top_n))
