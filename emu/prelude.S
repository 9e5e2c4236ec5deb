/* prelude.S — prelude.cuh as the string emu_prelude (nvrtc.c writes it next to every source
 * it compiles for the host). The path is relative to the tree's root, where make runs. */
    .section .rodata
    .globl emu_prelude
    .hidden emu_prelude
    .type emu_prelude, @object
emu_prelude:
    .incbin "emu/prelude.cuh"
    .byte 0
    .size emu_prelude, . - emu_prelude
    .section .note.GNU-stack, "", @progbits
