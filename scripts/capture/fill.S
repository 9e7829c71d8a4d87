# A tiny multiboot kernel for stream captures: rewrites 4 MiB at 16 MiB with a counter
# pattern forever, so a migration always has dirty pages and a postcopy destination faults.
.set MAGIC, 0x1BADB002
.set FLAGS, 0
.section .text
.align 4
.long MAGIC
.long FLAGS
.long -(MAGIC + FLAGS)
.globl _start
_start:
  xor %ecx, %ecx
1:
  mov $0x1000000, %edi
2:
  mov %ecx, (%edi)
  add $4096, %edi
  cmp $0x1400000, %edi
  jb 2b
  inc %ecx
  jmp 1b
