"""Coefficients of the float64 vector exp's polynomial (include/xentc/algo/exp_coefs.h).

exp(r) on the reduced range |r| <= ln2/2 is evaluated as
    p(r) = 1 + r + r^2 q(r),
q of degree 9 (11 FMAs by Horner, the last two adding r and 1 exactly as
written). q is mpmath's Chebyshev fit (near-minimax) of
    g(r) = (exp(r) - 1 - r) / r^2
in 50-digit arithmetic; the script checks the relative error of p with the
coefficients rounded to double on a dense grid, and prints the macro body.
The Taylor polynomial of degree 12 it replaces had a truncation error of
2e-16 (about 1 ulp) with one FMA more.

    python tools/fit_exp_poly.py
"""
import mpmath as mp

DEGREE_Q = 9


def g(r):
    if abs(r) < mp.mpf("1e-30"):
        return mp.mpf(1) / 2 + r / 6
    return (mp.exp(r) - 1 - r) / r**2


def main():
    mp.mp.dps = 50
    a, b = -mp.log(2) / 2, mp.log(2) / 2
    coeffs = [float(c) for c in mp.chebyfit(g, [a, b], DEGREE_Q + 1)]
    worst = mp.mpf(0)
    for i in range(20001):
        r = a + (b - a) * i / 20000
        p = 1 + r + r * r * mp.polyval([mp.mpf(c) for c in coeffs], r)
        worst = max(worst, abs(p / mp.exp(r) - 1))
    print(f"relative error of p with double coefficients: {mp.nstr(worst, 3)}")
    for c in coeffs:
        print(f"        p = FMA(p, r, SET1({c!r}));")


if __name__ == "__main__":
    main()
