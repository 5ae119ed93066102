/* Deterministic data for the C check harnesses (baseline_check.c,
 * aarch64_check.c): xorshift64*, uniform in [-scale, scale]. */
#ifndef XENTC_CHECK_RNG_H
#define XENTC_CHECK_RNG_H

#include <stdint.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(double scale)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
    return scale * (2.0 * (double)(r >> 11) / 9007199254740992.0 - 1.0);
}

#endif
