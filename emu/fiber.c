/* fiber.c — every CUDA thread of a block runs on a stack of its own, so that a thread
 * waiting at __syncthreads or a warp shuffle keeps its locals (per-thread arrays included)
 * while the others run up to the same point. A switch saves the callee-saved registers on
 * the old stack and loads the new stack pointer: no system call (ucontext's swapcontext
 * saves the signal mask with one on every switch). AddressSanitizer is told of every
 * switch, so that it checks each fiber against its own stack. */
#include "emu/emu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers switch stacks in x86-64 assembly"
#endif

/* emu_switch_stack(&save, load): pushes the callee-saved registers, stores the stack
 * pointer in *save, loads `load` and pops the registers saved there (System V x86-64). */
void emu_switch_stack(void **save, void *load);
__asm__(".text\n"
        ".globl emu_switch_stack\n"
        ".hidden emu_switch_stack\n"
        ".type emu_switch_stack, @function\n"
        "emu_switch_stack:\n"
        "    pushq %rbp\n    pushq %rbx\n    pushq %r12\n    pushq %r13\n    pushq %r14\n    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n    popq %r14\n    popq %r13\n    popq %r12\n    popq %rbx\n    popq %rbp\n"
        "    ret\n"
        ".size emu_switch_stack, .-emu_switch_stack\n");

int emu_fiber_stack(EmuFiber *f, size_t size, int index)
{
    f->color = (size_t)(index % 61) * 64;   /* stack tops 64 bytes apart modulo a page: not all in one cache set */
    long page = sysconf(_SC_PAGESIZE);
    size = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
    char *m = mmap(NULL, size + (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return -1;
    mprotect(m, (size_t)page, PROT_NONE);   /* a thread that overflows its stack faults here */
    f->stack = m + page;
    f->size = size;
    return 0;
}

void emu_fiber_release(EmuFiber *f)
{
    if (f->stack) munmap(f->stack - sysconf(_SC_PAGESIZE), f->size + (size_t)sysconf(_SC_PAGESIZE));
    f->stack = NULL;
}

/* The new stack, from its top: a zero (the entry function's "return address" slot, so that
 * it starts with the stack aligned as after a call), the entry as the address `ret` jumps
 * to, then six zeros for the registers the switch pops. */
void emu_fiber_prepare(EmuFiber *f, void (*entry)(void))
{
#ifdef EMU_ASAN
    __asan_unpoison_memory_region(f->stack, f->size);   /* frames of an aborted block */
#endif
    uintptr_t top = ((uintptr_t)f->stack + f->size - f->color) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;
    *--sp = (void *)entry;
    for (int i = 0; i < 6; i++) *--sp = NULL;
    f->sp = sp;
    f->asan_bottom = f->stack;
    f->asan_size = f->size;
}

/* from → to: the sanitizer learns the stack it runs on next */
static void switch_to(EmuFiber *from, EmuFiber *to, bool last)
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(last ? NULL : &from->asan_fake, to->asan_bottom, to->asan_size);
    emu_switch_stack(&from->sp, to->sp);
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#else
    (void)last;
    emu_switch_stack(&from->sp, to->sp);
#endif
}

void emu_fiber_switch(EmuFiber *from, EmuFiber *to) { switch_to(from, to, false); }

void emu_fiber_exit(EmuFiber *from, EmuFiber *to)
{
    switch_to(from, to, true);
    abort();   /* an exited fiber is never resumed */
}

void emu_fiber_started(void)
{
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

void emu_fiber_scheduler(EmuFiber *sched)
{
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &addr, &size);
        pthread_attr_destroy(&a);
    }
    sched->asan_bottom = addr;
    sched->asan_size = size;
}
