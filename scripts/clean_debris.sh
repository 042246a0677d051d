#!/usr/bin/env bash
# What DeepSpeed, Ray, torchrun and vLLM leave behind outside the work tree (STACK.md, "leaving no debris").
rm -f /dev/shm/deepspeed_allreduce_buffer_* 2>/dev/null
rm -rf /tmp/ray /tmp/torchelastic_* /tmp/torchinductor_"$(id -un)" 2>/dev/null
true
