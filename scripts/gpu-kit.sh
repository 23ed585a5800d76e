#!/bin/bash
# gpu-kit.sh - builds the CUDA backend here and packs what a GPU machine
# needs to test and benchmark it into gpu-kit/ (git-ignored): the CLI, the
# trainer, the GPU tests, the CUDA module and the host libraries they link
# that a bare CUDA machine may lack.  CUDA, cuBLAS and cuDNN themselves are
# found on the GPU machine (scripts/gpu-check.sh looks for them).
#
#   scripts/gpu-kit.sh            then, on the GPU machine, from the repo root:
#   bash scripts/gpu-check.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-gpu
if [ ! -d $build ]; then
  meson setup $build -Dgegl=disabled -Dgimp=disabled -Dcuda=enabled >/dev/null
fi
ninja -C $build cli/maskdcpt trainer/maskdcpt-train kernels/cuda/libmaskdcpt-cuda.so \
  tests/test_cuda tests/test_cuda_ops tests/test_cuda_net tests/test_kernels tests/test_api
rm -rf gpu-kit
mkdir -p gpu-kit/bin gpu-kit/lib
cp $build/cli/maskdcpt $build/trainer/maskdcpt-train $build/tests/test_cuda \
   $build/tests/test_cuda_ops $build/tests/test_cuda_net $build/tests/test_kernels \
   $build/tests/test_api gpu-kit/bin/
cp $build/kernels/cuda/libmaskdcpt-cuda.so gpu-kit/lib/
[ -f $build/core/libmaskdcpt.so.0 ] && cp -L $build/core/libmaskdcpt.so.0 gpu-kit/lib/
# Host libraries outside glibc and the CUDA stack.
for f in gpu-kit/bin/* gpu-kit/lib/*.so*; do
  ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|cuda|cudnn|cublas|libmaskdcpt' |
  while read -r lib; do cp -L "$lib" gpu-kit/lib/; done
du -sh gpu-kit
ls gpu-kit/lib
