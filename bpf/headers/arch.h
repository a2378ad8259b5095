// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// arch.h: what differs between the architectures contprof's programs are
// built for (bpf2go -target amd64,arm64 defines __TARGET_ARCH_x86 or
// __TARGET_ARCH_arm64). vmlinux.h comes from an x86-64 kernel; its
// architecture-neutral types relocate through CO-RE on arm64, but struct
// pt_regs has other fields there, so arm64 reads go through a local
// "flavour" (pt_regs___contprof: CO-RE ignores the ___suffix and matches the
// kernel's struct pt_regs, whose regs[] sits in an anonymous union).
//
// System call numbers are the architecture's own: x86-64 has its historical
// table, arm64 uses the generic one (include/uapi/asm-generic/unistd.h).
#pragma once

#include <bpf/bpf_core_read.h>

#if defined(__TARGET_ARCH_x86)

#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47

// At a system call's exit the saved user registers still hold the arguments
// (the return value went to ax).
#define SYSCALL_EXIT_ARG0(r) BPF_CORE_READ((struct pt_regs *)(r), di)
#define SYSCALL_EXIT_ARG1(r) BPF_CORE_READ((struct pt_regs *)(r), si)
#define SYSCALL_EXIT_ARG2(r) BPF_CORE_READ((struct pt_regs *)(r), dx)
#define SYSCALL_NR(r) BPF_CORE_READ((struct pt_regs *)(r), orig_ax)

// The same from a trusted (BTF) pointer, e.g. bpf_task_pt_regs() in a tp_btf
// program: plain loads (CO-RE relocated), no probe-read helper calls.
#define BTF_SYSCALL_EXIT_ARG0(r) (((struct pt_regs *)(r))->di)
#define BTF_SYSCALL_EXIT_ARG1(r) (((struct pt_regs *)(r))->si)
#define BTF_SYSCALL_EXIT_ARG2(r) (((struct pt_regs *)(r))->dx)
#define BTF_SYSCALL_NR(r) (((struct pt_regs *)(r))->orig_ax)

// A user context's instruction, stack and frame pointers.
#define USER_IP(r) BPF_CORE_READ((struct pt_regs *)(r), ip)
#define USER_SP(r) BPF_CORE_READ((struct pt_regs *)(r), sp)
#define USER_FP(r) BPF_CORE_READ((struct pt_regs *)(r), bp)

#elif defined(__TARGET_ARCH_arm64)

#define NR_close 57
#define NR_read 63
#define NR_write 64
#define NR_readv 65
#define NR_writev 66
#define NR_sendto 206
#define NR_recvfrom 207
#define NR_sendmsg 211
#define NR_recvmsg 212

struct pt_regs___contprof {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

// x0 carries the return value at exit; the first argument survives in
// orig_x0, the others in x1.. (the kernel writes back only x0).
#define SYSCALL_EXIT_ARG0(r) BPF_CORE_READ((struct pt_regs___contprof *)(r), orig_x0)
#define SYSCALL_EXIT_ARG1(r) BPF_CORE_READ((struct pt_regs___contprof *)(r), regs[1])
#define SYSCALL_EXIT_ARG2(r) BPF_CORE_READ((struct pt_regs___contprof *)(r), regs[2])
#define SYSCALL_NR(r) BPF_CORE_READ((struct pt_regs___contprof *)(r), syscallno)

#define BTF_SYSCALL_EXIT_ARG0(r) (((struct pt_regs___contprof *)(r))->orig_x0)
#define BTF_SYSCALL_EXIT_ARG1(r) (((struct pt_regs___contprof *)(r))->regs[1])
#define BTF_SYSCALL_EXIT_ARG2(r) (((struct pt_regs___contprof *)(r))->regs[2])
#define BTF_SYSCALL_NR(r) (((struct pt_regs___contprof *)(r))->syscallno)

// A user context's instruction, stack and frame pointers (x29 is the frame
// pointer in the AAPCS64).
#define USER_IP(r) BPF_CORE_READ((struct pt_regs___contprof *)(r), pc)
#define USER_SP(r) BPF_CORE_READ((struct pt_regs___contprof *)(r), sp)
#define USER_FP(r) BPF_CORE_READ((struct pt_regs___contprof *)(r), regs[29])

#else
#error "contprof BPF programs are built for x86 (amd64) and arm64 only"
#endif
