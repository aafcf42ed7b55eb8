/* Read bandwidth of this machine, STREAM-style: OMP_NUM_THREADS threads sum a 1 GiB f32 array
 * with AVX2 loads (plain C fallback without AVX2); best of 5 passes. The array is advised onto
 * transparent huge pages, as zoo's loaded weights are (zoo_weights::mem). Compiled and run by
 * bench/decode.sh to put the decode figures of weight-streaming models next to the ceiling:
 *   gcc -O3 -march=native -fopenmp bench/membw.c -o /tmp/membw && OMP_NUM_THREADS=2 /tmp/membw
 * Prints one JSON line: {"threads": N, "read_gb_s": X}. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <omp.h>
#include <sys/mman.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

int main(void) {
    const size_t n = (size_t)1 << 28; /* 1 GiB of f32 */
    float *a = aligned_alloc(2 << 20, n * sizeof(float));
    if (!a) return 1;
    madvise(a, n * sizeof(float), MADV_HUGEPAGE); /* advice only: ignored without THP */
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023) * 1e-3f;
    double best = 1e30, keep = 0;
    for (int r = 0; r < 5; r++) {
        struct timespec s, e;
        clock_gettime(CLOCK_MONOTONIC, &s);
        double sum = 0;
#pragma omp parallel for reduction(+ : sum)
        for (size_t c = 0; c < n; c += 64) {
#ifdef __AVX2__
            __m256 acc = _mm256_setzero_ps();
            for (size_t i = c; i < c + 64; i += 8) acc = _mm256_add_ps(acc, _mm256_load_ps(a + i));
            float t[8];
            _mm256_storeu_ps(t, acc);
            sum += t[0] + t[3] + t[7];
#else
            float acc = 0;
            for (size_t i = c; i < c + 64; i++) acc += a[i];
            sum += acc;
#endif
        }
        clock_gettime(CLOCK_MONOTONIC, &e);
        double dt = (double)(e.tv_sec - s.tv_sec) + (double)(e.tv_nsec - s.tv_nsec) * 1e-9;
        if (dt < best) best = dt;
        keep += sum;
    }
    printf("{\"threads\": %d, \"read_gb_s\": %.1f, \"checksum\": %.0f}\n", omp_get_max_threads(),
           (double)(n * sizeof(float)) / best / 1e9, keep);
    free(a);
    return 0;
}
