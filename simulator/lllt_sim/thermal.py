"""Two-node thermal model of one zone, discretised for the control tick (DESIGN §9).

Per zone, an emitter-board node ``Tb`` and a scalp-contact node ``Ts``::

    C_b dTb/dt = Q_b + G_c (Ts - Tb) + G_a (Ta - Tb)
    C_s dTs/dt = Q_s + G_c (Tb - Ts) + G_t (Tcore - Ts)

The device holds its heat inputs constant over a control tick (zero-order hold) and
makes them affine in the board temperature at the start of the tick
(``Q = q0 + q1 Tb``: drive and saturated output depend on it). One tick is then an
affine map ``x' = x + E x + c`` with ``E = Phi - I + Gamma q1 e_b^T`` exact for the hold.

While the inputs stay constant, ``n`` ticks are ``x_n = x* + sum_i mu_i^n a_i v_i``
(eigen-decomposition of the 2x2 map), which gives any number of ticks in a few
operations, the exact range each temperature sweeps on the way (each term is monotone)
and the sum of board temperatures (for outputs that depend on it). That is what lets a
25-minute session take a few thousand jumps instead of 150,000 ticks.

``E`` is kept as ``Phi - I`` (never forming ``Phi`` and subtracting 1), because its
entries are ~1e-4 and the eigenvalues ``1 + eps`` must keep their small parts.
"""

from __future__ import annotations

import math

from lllt import wire

_CACHE_LIMIT = 512


def _mat_mul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [
        [a[0][0] * b[0][0] + a[0][1] * b[1][0], a[0][0] * b[0][1] + a[0][1] * b[1][1]],
        [a[1][0] * b[0][0] + a[1][1] * b[1][0], a[1][0] * b[0][1] + a[1][1] * b[1][1]],
    ]


def _hold_matrices(a: list[list[float]], h: float) -> tuple[list[list[float]], list[list[float]]]:
    """(exp(A h) - I, integral_0^h exp(A s) ds) by their Taylor series.

    ``|A| h`` is ~1e-4 for a 10 ms tick, so a dozen terms are exact to the last bit.
    """
    psi = [[h, 0.0], [0.0, h]]  # integral of exp(A s): sum A^k h^(k+1) / (k+1)!
    term = [[h, 0.0], [0.0, h]]
    for k in range(1, 16):
        term = _mat_mul(a, term)
        f = h / (k + 1)
        term = [[term[0][0] * f, term[0][1] * f], [term[1][0] * f, term[1][1] * f]]
        psi = [[psi[i][j] + term[i][j] for j in range(2)] for i in range(2)]
    phim1 = _mat_mul(a, psi)  # exp(A h) - I = A * integral
    return phim1, psi


class ZoneThermal:
    """Constants of one zone's model at a given ambient temperature and tick."""

    __slots__ = ("_cache", "ambient_c", "gam", "phim1", "tick_s", "u_base", "zone")

    def __init__(self, zone: wire.ZoneInfo, ambient_c: float, tick_s: float) -> None:
        self.zone = zone
        self.ambient_c = ambient_c
        self.tick_s = tick_s
        cb, cs = zone.c_board_j_k, zone.c_scalp_j_k
        ga, gc, gt = zone.g_ambient_w_k, zone.g_contact_w_k, zone.g_tissue_w_k
        a = [[-(gc + ga) / cb, gc / cb], [gc / cs, -(gc + gt) / cs]]
        phim1, psi = _hold_matrices(a, tick_s)
        self.phim1 = phim1
        # Gamma = integral * B with B = diag(1/C_b, 1/C_s): watts in -> kelvin per tick
        self.gam = [[psi[0][0] / cb, psi[0][1] / cs], [psi[1][0] / cb, psi[1][1] / cs]]
        # constant inflow from ambient air and perfused tissue (W)
        self.u_base = (ga * ambient_c, gt * zone.t_core_c)
        self._cache: dict[tuple[float, float, float, float], ZoneStep] = {}

    def step(self, qb0: float, qb1: float, qs0: float, qs1: float) -> ZoneStep:
        """The tick map for heat inputs ``Q_b = qb0 + qb1 Tb``, ``Q_s = qs0 + qs1 Tb`` (W)."""
        key = (qb0, qb1, qs0, qs1)
        st = self._cache.get(key)
        if st is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()  # ramps make a new map every tick; keep memory bounded
            st = ZoneStep(self, qb0, qb1, qs0, qs1)
            self._cache[key] = st
        return st

    def steady_state(self, qb0: float = 0.0, qs0: float = 0.0) -> tuple[float, float]:
        """(Tb, Ts) at equilibrium with constant heat inputs (W)."""
        st = self.step(qb0, 0.0, qs0, 0.0)
        return st.fixed_point()


class ZoneStep:
    """The affine tick map of one zone for fixed heat inputs, with fast n-tick jumps."""

    __slots__ = (
        "_eig_done",
        "_powers",
        "c0",
        "c1",
        "e00",
        "e01",
        "e10",
        "e11",
        "jumpable",
        "k",
        "l1",
        "l2",
        "mu1",
        "mu2",
        "xb",
        "xs",
    )

    def __init__(self, th: ZoneThermal, qb0: float, qb1: float, qs0: float, qs1: float) -> None:
        g = th.gam
        pm = th.phim1
        self.e00 = pm[0][0] + g[0][0] * qb1 + g[0][1] * qs1
        self.e01 = pm[0][1]
        self.e10 = pm[1][0] + g[1][0] * qb1 + g[1][1] * qs1
        self.e11 = pm[1][1]
        u0 = qb0 + th.u_base[0]
        u1 = qs0 + th.u_base[1]
        self.c0 = g[0][0] * u0 + g[0][1] * u1
        self.c1 = g[1][0] * u0 + g[1][1] * u1
        self._eig_done = False
        self.jumpable = False
        self._powers: dict[int, tuple[float, float, float, float]] = {}

    def tick(self, tb: float, ts: float) -> tuple[float, float]:
        """One control tick."""
        return (
            tb + (self.e00 * tb + self.e01 * ts + self.c0),
            ts + (self.e10 * tb + self.e11 * ts + self.c1),
        )

    def fixed_point(self) -> tuple[float, float]:
        det = self.e00 * self.e11 - self.e01 * self.e10
        xb = -(self.e11 * self.c0 - self.e01 * self.c1) / det
        xs = -(-self.e10 * self.c0 + self.e00 * self.c1) / det
        return xb, xs

    def can_jump(self) -> bool:
        """True when n-tick jumps are available (computed on first use)."""
        if not self._eig_done:
            self._eig()
        return self.jumpable

    def _eig(self) -> None:
        """Eigen-decomposition; leaves ``jumpable`` False for a map that is not a decay."""
        self._eig_done = True
        e00, e01, e10, e11 = self.e00, self.e01, self.e10, self.e11
        det = e00 * e11 - e01 * e10
        half_tr = 0.5 * (e00 + e11)
        hd = 0.5 * (e00 - e11)
        disc = hd * hd + e01 * e10
        if not (disc > 0.0 and det > 0.0 and half_tr < 0.0 and e01 != 0.0):
            return  # complex or unstable: step tick by tick (never for a passive zone)
        eps2 = half_tr - math.sqrt(disc)  # fast mode, no cancellation
        eps1 = det / eps2  # slow mode from the product, no cancellation either
        if not (-1.0 < eps2 < eps1 < 0.0):
            return
        self.xb, self.xs = self.fixed_point()
        # eigenvectors v_i = (e01, eps_i - e00); k[r][i][j] = V[r][i] * W[i][j]
        d = e01 * (eps2 - eps1)
        w = ((eps2 - e00) / d, -e01 / d, -(eps1 - e00) / d, e01 / d)
        v = (e01, e01, eps1 - e00, eps2 - e00)
        self.k = (
            v[0] * w[0],  # board, mode 1, from delta_b
            v[0] * w[1],  # board, mode 1, from delta_s
            v[1] * w[2],  # board, mode 2
            v[1] * w[3],
            v[2] * w[0],  # scalp, mode 1
            v[2] * w[1],
            v[3] * w[2],  # scalp, mode 2
            v[3] * w[3],
        )
        self.l1 = math.log1p(eps1)
        self.l2 = math.log1p(eps2)
        self.mu1 = 1.0 + eps1
        self.mu2 = 1.0 + eps2
        self.jumpable = True

    def powers(self, n: int) -> tuple[float, float, float, float]:
        """(mu1^n, mu2^n, sum_{j<n} mu1^j, sum_{j<n} mu2^j), cached per n."""
        p = self._powers.get(n)
        if p is None:
            a = n * self.l1
            b = n * self.l2
            e1 = self.mu1 - 1.0
            e2 = self.mu2 - 1.0
            p = (math.exp(a), math.exp(b), math.expm1(a) / e1, math.expm1(b) / e2)
            if len(self._powers) > 64:
                self._powers.clear()
            self._powers[n] = p
        return p

    def jump(
        self, tb: float, ts: float, n: int
    ) -> tuple[float, float, float, float, float, float, float]:
        """``n`` ticks at once (only after :meth:`can_jump` said yes).

        Returns ``(tb_n, ts_n, tb_lo, tb_hi, ts_lo, ts_hi, sum_tb)``: the state after ``n``
        ticks, bounds on the range each node takes at ticks 1..n, and the sum of ``Tb`` over ticks
        0..n-1 (the board temperatures the outputs of those ticks were computed from).
        """
        p1, p2, s1, s2 = self.powers(n)
        db = tb - self.xb
        ds = ts - self.xs
        k = self.k
        ab1 = k[0] * db + k[1] * ds
        ab2 = k[2] * db + k[3] * ds
        as1 = k[4] * db + k[5] * ds
        as2 = k[6] * db + k[7] * ds
        # each mode decays monotonically, so over ticks 1..n it stays between its value
        # at tick 0 and at tick n (a hair wider than 1..n: the bound stays safe)
        b1 = ab1 * p1
        b2 = ab2 * p2
        s1_ = as1 * p1
        s2_ = as2 * p2
        xb = self.xb
        xs = self.xs
        return (
            xb + b1 + b2,
            xs + s1_ + s2_,
            xb + (ab1 if ab1 < b1 else b1) + (ab2 if ab2 < b2 else b2),
            xb + (ab1 if ab1 > b1 else b1) + (ab2 if ab2 > b2 else b2),
            xs + (as1 if as1 < s1_ else s1_) + (as2 if as2 < s2_ else s2_),
            xs + (as1 if as1 > s1_ else s1_) + (as2 if as2 > s2_ else s2_),
            n * xb + ab1 * s1 + ab2 * s2,
        )
