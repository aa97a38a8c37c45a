# The oracle's bare-metal test kernel: a multiboot entry that enters long mode with the LAYOUT of
# conformance/case.ts (identity map of 64 MiB, PML4 at 0x70000, 4 KiB pages below 2 MiB), Linux's GDT layout
# (__KERNEL_CS 0x10, __KERNEL_DS 0x18, __USER_DS 0x2b, __USER_CS 0x33, TSS 0x40), an IDT whose every handler
# records what it found and escapes to the case's resume point, and routines the generated cases (cases.S,
# written by conformance/oracle/kernel.ts) call. Results go to QEMU's debug console (port 0xe9) as text lines.
# Assembled with GNU as (--64), linked at 1 MiB, then converted to ELF32 so QEMU's -kernel loads it (multiboot).

        .set PML4, 0x70000
        .set HPDPT, 0x71000
        .set HPD, 0x72000
        .set HPT, 0x73000
        .set APIC_PD, 0x74000           # maps the local APIC's page (0xfee00000) for self-IPIs
        .set APIC, 0xfee00000
        .set HFLAGS, 0x67
        .set IDT, 0x60000
        .set TSS, 0x61000
        .set HARNESS_STACK, 0x88000
        .set DEBUGCON, 0xe9

        .section .multiboot, "a"
        .align 4
        .long 0x1badb002                # multiboot v1 magic
        .long 0                         # flags
        .long -0x1badb002               # checksum

        .section .text
        .code32
        .globl _start
_start:
        cli
        lgdt gdt_pointer32
        # Zero the harness tables (PML4, PDPT, PD, PT, the APIC's PD).
        mov $PML4, %edi
        xor %eax, %eax
        mov $(5 * 4096 / 4), %ecx
        rep stosl
        movl $(HPDPT + HFLAGS), PML4
        movl $(HPD + HFLAGS), HPDPT
        movl $(HPT + HFLAGS), HPD
        # PT: 512 identity 4 KiB pages for 0..2 MiB.
        xor %ecx, %ecx
1:      mov %ecx, %eax
        shl $12, %eax
        or $HFLAGS, %eax
        mov %eax, HPT(,%ecx,8)
        inc %ecx
        cmp $512, %ecx
        jne 1b
        # PD[1..31]: identity 2 MiB pages (PS) for 2..64 MiB.
        mov $1, %ecx
2:      mov %ecx, %eax
        shl $21, %eax
        or $(HFLAGS + 0x80), %eax
        mov %eax, HPD(,%ecx,8)
        inc %ecx
        cmp $32, %ecx
        jne 2b
        # PDPT[3] -> APIC_PD, whose entry 503 is the 2 MiB page holding the local APIC (supervisor, PCD).
        movl $(APIC_PD + 0x63), HPDPT + 8 * 3
        movl $(APIC + 0xf3), APIC_PD + 8 * 503
        # CR4.PAE and PGE, CR3, EFER.LME and NXE, then CR0.PG, WP and PE: long mode.
        mov $0xa0, %eax
        mov %eax, %cr4
        mov $PML4, %eax
        mov %eax, %cr3
        mov $0xc0000080, %ecx
        rdmsr
        or $0x900, %eax
        wrmsr
        mov $0x80010001, %eax
        mov %eax, %cr0
        ljmp $0x10, $long_mode

        .code64
long_mode:
        mov $0x18, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        xor %ax, %ax
        mov %ax, %fs
        mov %ax, %gs
        mov $HARNESS_STACK, %rsp
        lgdt gdt_pointer64(%rip)
        # No interrupts from the PICs: nothing external may land in a case.
        mov $0xff, %al
        out %al, $0x21
        out %al, $0xa1
        # The TSS descriptor (GDT 8-9): base TSS, limit 0x67, available 64-bit TSS.
        lea gdt(%rip), %rdi
        movabs $0x0000890000000067, %rax
        mov $TSS, %rbx
        mov %rbx, %rcx
        and $0xffffff, %rcx
        shl $16, %rcx
        or %rcx, %rax
        mov %rbx, %rcx
        shr $24, %rcx
        and $0xff, %rcx
        shl $56, %rcx
        or %rcx, %rax
        mov %rax, 64(%rdi)
        mov %rbx, %rcx
        shr $32, %rcx
        mov %rcx, 72(%rdi)
        mov $0x40, %ax
        ltr %ax
        lidt idt_pointer(%rip)
        # Software-enable the local APIC (SVR bit 8, spurious vector 0xff) so a self-IPI is accepted.
        mov $(APIC + 0xf0), %eax
        movl $0x1ff, (%rax)
        call run_cases
        lea done_text(%rip), %rsi
        call print_string
        # Power off through the ISA debug-exit device.
        mov $0x0, %al
        out %al, $0xf4
3:      hlt
        jmp 3b

# --- Output -----------------------------------------------------------------------------------------------------

# print_string: the NUL-terminated text at %rsi.
print_string:
        mov $DEBUGCON, %dx
1:      lodsb
        test %al, %al
        jz 2f
        out %al, %dx
        jmp 1b
2:      ret

# print_char: %al.
print_char:
        push %rdx
        mov $DEBUGCON, %dx
        out %al, %dx
        pop %rdx
        ret

# print_hex: %rax as a space and 16 hex digits.
print_hex:
        push %rcx
        push %rdx
        push %rbx
        mov %rax, %rbx
        mov $' ', %al
        call print_char
        mov $16, %ecx
1:      rol $4, %rbx
        mov %bl, %al
        and $0xf, %al
        add $'0', %al
        cmp $'9', %al
        jbe 2f
        add $('a' - '0' - 10), %al
2:      call print_char
        dec %ecx
        jnz 1b
        pop %rbx
        pop %rdx
        pop %rcx
        ret

# print_line_start: the letter %al, then the case number.
print_line_start:
        call print_char
        mov case_number(%rip), %rax
        call print_hex
        ret

newline:
        mov $'\n', %al
        jmp print_char

# --- Case set-up routines (called by cases.S on the harness stack) -------------------------------------------

# case_begin: %rdi = case number. Resets the IDT to the default gates, the TSS, the stack pages and the target
# qwords, CR2, and flushes the TLB; prints "B <case>"; marks the case in QEMU's -d int log with INT 0x90 (RAX =
# the case number).
case_begin:
        mov %rdi, case_number(%rip)
        mov $'B', %al
        call print_line_start
        call newline
        # Default gates: 0..31, 0x80..0x8f interrupt gates, DPL 0, __KERNEL_CS, IST 0; #DF on IST1; 0x81 DPL 3; the
        # markers 0x90 (a case) and 0x91 (a step). Every other vector is a zeroed descriptor.
        mov $IDT, %rdi
        xor %eax, %eax
        mov $(4096 / 8), %ecx
        rep stosq
        xor %edi, %edi
1:      mov $0x8e00, %esi
        call set_default_gate
        inc %edi
        cmp $32, %edi
        jne 1b
        mov $0x80, %edi
2:      mov $0x8e00, %esi
        call set_default_gate
        inc %edi
        cmp $0x90, %edi
        jne 2b
        mov $8, %edi
        mov $0x8e01, %esi
        call set_default_gate
        mov $0x81, %edi
        mov $0xee00, %esi
        call set_default_gate
        mov $0x90, %edi
        mov $0x8e00, %esi
        call set_default_gate
        mov $0x91, %edi
        mov $0x8e00, %esi
        call set_default_gate
        # TSS: RSP0 and IST1..3 at the tops of their stack pages.
        movq $0x93000, TSS + 4
        movq $0x95000, TSS + 0x24
        movq $0x97000, TSS + 0x2c
        movq $0x99000, TSS + 0x34
        # Stack pages present and writable again.
        movq $(0x90000 + HFLAGS), HPT + 8 * 0x90
        movq $(0x92000 + HFLAGS), HPT + 8 * 0x92
        movq $(0x94000 + HFLAGS), HPT + 8 * 0x94
        movq $(0x96000 + HFLAGS), HPT + 8 * 0x96
        movq $(0x98000 + HFLAGS), HPT + 8 * 0x98
        movq $(0x9a000 + HFLAGS), HPT + 8 * 0x9a
        # The target qwords of the three leaf sizes.
        movabs $0x11223344556677c3, %rax
        mov %rax, 0x300238
        mov %rax, 0x403238
        mov %rax, 0x603238
        # The test tables are zeroed; the case writes its entries.
        mov $0x200000, %rdi
        xor %eax, %eax
        mov $(3 * 4096 / 8), %ecx
        rep stosq
        movq $0, PML4 + 8
        xor %eax, %eax
        mov %rax, %cr2
        # CR0.WP and EFER.NXE set; the case changes them after.
        mov %cr0, %rax
        or $0x10000, %rax
        mov %rax, %cr0
        mov $0xc0000080, %ecx
        rdmsr
        or $0x800, %eax
        wrmsr
        call flush_all
        mov case_number(%rip), %rax
        int $0x90
        ret

# set_default_gate: vector %edi, attributes %esi (bits 15:8 P, DPL, type; bits 2:0 IST), __KERNEL_CS.
set_default_gate:
        mov $0x10, %edx
        # fall through
# set_gate: vector %edi, attributes %esi, selector %edx; the handler is handler_table[vector].
set_gate:
        push %rax
        push %rbx
        push %rcx
        lea handler_table(%rip), %rbx
        mov %edi, %ecx
        mov (%rbx,%rcx,8), %rax
        mov %rcx, %rbx
        shl $4, %rbx
        add $IDT, %rbx
        mov %ax, (%rbx)
        mov %dx, 2(%rbx)
        mov %si, 4(%rbx)
        shr $16, %rax
        mov %ax, 6(%rbx)
        shr $16, %rax
        mov %eax, 8(%rbx)
        movl $0, 12(%rbx)
        pop %rcx
        pop %rbx
        pop %rax
        ret

# clear_gate: vector %edi becomes a zeroed descriptor.
clear_gate:
        mov %edi, %eax
        shl $4, %rax
        add $IDT, %rax
        movq $0, (%rax)
        movq $0, 8(%rax)
        ret

# flush_all: CR4.PGE off and on (flushes global translations too), and a CR3 reload.
flush_all:
        mov %cr4, %rax
        and $~0x80, %rax
        mov %rax, %cr4
        or $0x80, %rax
        mov %rax, %cr4
        mov %cr3, %rax
        mov %rax, %cr3
        ret

# set_wp: CR0.WP = %edi.
set_wp:
        mov %cr0, %rax
        and $~0x10000, %rax
        test %edi, %edi
        jz 1f
        or $0x10000, %rax
1:      mov %rax, %cr0
        ret

# set_nxe: EFER.NXE = %edi.
set_nxe:
        mov $0xc0000080, %ecx
        rdmsr
        and $~0x800, %eax
        test %edi, %edi
        jz 1f
        or $0x800, %eax
1:      wrmsr
        ret

# step_begin: %rdi = the step's faulting-instruction address, %rsi = the next instruction's, %rdx = where to resume
# after a handler. Clears the step's record, then fills in the two addresses.
step_begin:
        mov %rdx, resume_rip(%rip)
        mov %rdi, %rdx
        lea step_record(%rip), %rdi
        xor %eax, %eax
        mov $STEP_RECORD_QWORDS, %ecx
        rep stosq
        mov %rdx, fault_rip(%rip)
        mov %rsi, next_rip(%rip)
        mov case_number(%rip), %rax
        int $0x91                       # marks the step in QEMU's -d int log
        ret

# step_end: prints "S <case> <event> <value> <vector> <entry rsp> <cr2> <fault rip> <next rip> <6 frame slots>",
# the step record in order.
step_end:
        mov $'S', %al
        call print_line_start
        lea step_record(%rip), %rsi
        mov $STEP_RECORD_QWORDS, %ecx
1:      mov (%rsi), %rax
        call print_hex
        add $8, %rsi
        dec %ecx
        jnz 1b
        jmp newline

# case_end: prints "E <case> <entries...> <target qword>" for a paging case: %rdi = number of entries, %rsi = the
# address of a list of their physical addresses, %rdx = the target's physical address.
case_end:
        push %rdx
        push %rsi
        push %rdi
        mov $'E', %al
        call print_line_start
        pop %rcx
        pop %rsi
1:      test %rcx, %rcx
        jz 2f
        mov (%rsi), %rbx
        mov (%rbx), %rax
        call print_hex
        add $8, %rsi
        dec %rcx
        jmp 1b
2:      pop %rdx
        mov (%rdx), %rax
        call print_hex
        jmp newline

# --- Handlers ---------------------------------------------------------------------------------------------------

# Every gate's handler saves RAX and the vector, then joins handler_common. It never returns: the case is over
# (or, for paging cases, the step) and the harness resumes at resume_rip on its own stack.
handler_common:
        mov %rsp, entry_rsp(%rip)
        mov %cs, %ax
        test $3, %ax
        jnz handler_in_user
        mov step_entry_vector(%rip), %rax
        cmp $0x90, %rax
        je marker_return
        cmp $0x91, %rax
        je marker_return
        cmp $0x81, %rax
        jne record_event
        cmpq $0, user_handler(%rip)
        jne record_user_handler
        # User code came back with INT 0x81: its access did not fault; RAX held what it read.
        mov saved_rax(%rip), %rax
        mov %rax, step_value(%rip)
        jmp resume
record_user_handler:
        # A handler ran at CPL 3 (a gate to a DPL 3 code segment) and came here with INT 0x81 to be recorded.
        movq $0, user_handler(%rip)
        mov user_entry_rsp(%rip), %rax
        mov %rax, entry_rsp(%rip)
        mov user_vector(%rip), %rax
        mov %rax, step_entry_vector(%rip)
record_event:
        mov step_entry_vector(%rip), %rax
        cmpq $0, step_event(%rip)
        jne resume                      # only the first handler is recorded
        movq $1, step_event(%rip)
        mov %rax, step_vector(%rip)
        mov %cr2, %rax
        mov %rax, step_cr2(%rip)
        mov entry_rsp(%rip), %rsi
        lea frame_slots(%rip), %rdi
        mov $6, %ecx
1:      mov (%rsi), %rax
        mov %rax, (%rdi)
        add $8, %rsi
        add $8, %rdi
        dec %ecx
        jnz 1b
resume:
        # EOI (a self-IPI, or an interrupt whose delivery faulted, stays in service otherwise), then IRETQ to the
        # resume point on the harness stack: an IRET ends NMI blocking, so the next case can take an NMI again.
        mov $(APIC + 0xb0), %eax
        movl $0, (%rax)
        mov $0x18, %ax
        mov %ax, %ss
        mov harness_rsp(%rip), %rsp
        pushq $0x18
        pushq harness_rsp(%rip)
        pushq $0x2
        pushq $0x10
        pushq resume_rip(%rip)
        iretq

handler_in_user:
        mov %rsp, user_entry_rsp(%rip)
        mov step_entry_vector(%rip), %rax
        mov %rax, user_vector(%rip)
        movq $1, user_handler(%rip)
        int $0x81

marker_return:
        mov saved_rax(%rip), %rax
        iretq

        .macro handler vector
handler_\vector:
        mov %rax, saved_rax(%rip)
        movq $\vector, step_entry_vector(%rip)
        jmp handler_common
        .endm

        .altmacro
        .set vector, 0
        .rept 256
        handler %vector
        .set vector, vector + 1
        .endr

        .section .data
        .align 8
        .macro handler_address vector
        .quad handler_\vector
        .endm
handler_table:
        .set vector, 0
        .rept 256
        handler_address %vector
        .set vector, vector + 1
        .endr

        .align 16
gdt:
        .quad 0                         # 0x00 null
        .quad 0x00cf9a000000ffff        # 0x08 __KERNEL32_CS
        .quad 0x00af9a000000ffff        # 0x10 __KERNEL_CS
        .quad 0x00cf92000000ffff        # 0x18 __KERNEL_DS
        .quad 0x00cffa000000ffff        # 0x23 __USER32_CS
        .quad 0x00cff2000000ffff        # 0x2b __USER_DS
        .quad 0x00affa000000ffff        # 0x33 __USER_CS
        .quad 0                         # 0x38
        .quad 0, 0                      # 0x40 TSS (filled at boot)
        .quad 0, 0, 0, 0, 0, 0          # 0x50..0x78
gdt_end:
gdt_pointer32:
        .word gdt_end - gdt - 1
        .long gdt
gdt_pointer64:
        .word gdt_end - gdt - 1
        .quad gdt
idt_pointer:
        .word 4096 - 1
        .quad IDT
done_text:
        .asciz "DONE\n"

        .align 8
case_number: .quad 0
harness_rsp: .quad 0
resume_rip: .quad 0
saved_rax: .quad 0
step_entry_vector: .quad 0
user_handler: .quad 0
user_entry_rsp: .quad 0
user_vector: .quad 0
# The step record, in the order step_end prints it (step_begin clears it whole).
step_record:
step_event: .quad 0
step_value: .quad 0
step_vector: .quad 0
entry_rsp: .quad 0
step_cr2: .quad 0
fault_rip: .quad 0
next_rip: .quad 0
frame_slots: .quad 0, 0, 0, 0, 0, 0
        .set STEP_RECORD_QWORDS, (. - step_record) / 8

        .section .text
        .include "cases.S"
