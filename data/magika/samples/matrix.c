#include <stdio.h>
#include <stdlib.h>

/* Multiplies two n x n matrices stored row by row. */
static void matmul(const float *a, const float *b, float *c, int n) {
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int k = 0; k < n; k++) {
                sum += a[i * n + k] * b[k * n + j];
            }
            c[i * n + j] = sum;
        }
    }
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    float *a = calloc(n * n, sizeof(float));
    float *b = calloc(n * n, sizeof(float));
    float *c = calloc(n * n, sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)i;
        b[i] = i % (n + 1) == 0 ? 1.0f : 0.0f;
    }
    matmul(a, b, c, n);
    printf("c[%d] = %f\n", n * n - 1, c[n * n - 1]);
    free(a);
    free(b);
    free(c);
    return 0;
}
