# gpu-env.sh - sourced by the scripts that run gpu-kit/ (scripts/gpu-kit.sh)
# on a GPU machine, from the repository root: sets `kit` and points the
# dynamic loader at the kit's libraries and at cuBLAS / cuDNN / cudart,
# the toolkit's or PyTorch's pip wheels, wherever they are.
kit=$PWD/gpu-kit
libdirs=$(find / -xdev \( -name 'libcudnn.so.9' -o -name 'libcublas.so.13' -o -name 'libcudart.so.13' \) \
            -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH=$kit/lib:$libdirs${LD_LIBRARY_PATH:-}
export MASKDCPT_CUDA_MODULE=$kit/lib/libmaskdcpt-cuda.so
