// Target of the cuda_stub real-GPU test: a counter that lives only in device memory.
//
// Every 50 ms a one-thread kernel increments the counter, the host copies it back and writes it to OUTFILE
// (written to OUTFILE.tmp and renamed, opened and closed each time, so the task holds no file open between
// steps). A restore that loses the device memory shows as a counter starting again from 1, or as a CUDA error
// (the program then exits with status 1 and says why on stderr).
//
// Build: nvcc -O2 -o cuda_counter cuda_counter.cu

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>
#include <unistd.h>

__global__ void bump(unsigned long long *counter) { *counter += 1; }

static void check(cudaError_t err, const char *what) {
    if (err != cudaSuccess) {
        fprintf(stderr, "cuda_counter: %s: %s\n", what, cudaGetErrorString(err));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTFILE\n", argv[0]);
        return 2;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);

    unsigned long long *dev = nullptr, host = 0;
    check(cudaMalloc(&dev, sizeof(*dev)), "cudaMalloc");
    check(cudaMemset(dev, 0, sizeof(*dev)), "cudaMemset");
    for (;;) {
        bump<<<1, 1>>>(dev);
        check(cudaGetLastError(), "launch");
        check(cudaMemcpy(&host, dev, sizeof(host), cudaMemcpyDeviceToHost), "cudaMemcpy");
        FILE *f = fopen(tmp, "w");
        if (f == nullptr) {
            perror("cuda_counter: fopen");
            return 1;
        }
        fprintf(f, "%llu\n", host);
        fclose(f);
        if (rename(tmp, argv[1]) != 0) {
            perror("cuda_counter: rename");
            return 1;
        }
        usleep(50 * 1000);
    }
}
