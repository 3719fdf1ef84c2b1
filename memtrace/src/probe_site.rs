//! Where in a function to place its probe.
//!
//! A uprobe replaces one instruction with a breakpoint. When the kernel can
//! emulate the displaced instruction (a `push` of a register, a `nop`, a
//! relative `jmp`, `call` or conditional jump) the hit is cheap; any other
//! instruction is single-stepped out of line, which costs several times more.
//! glibc's `free` opens with `test rdi, rdi`, a single-step, followed by a
//! conditional jump, which the kernel emulates.
//!
//! So the probe goes on the first emulated instruction of the function's
//! straight-line prologue, provided every call passes through it with the
//! arguments the probe reads still untouched. Functions with a return probe
//! must also keep the stack pointer where it was at entry: the kernel finds
//! the return address to hijack at the stack pointer. Anything doubtful falls
//! back to offset 0, which is always correct.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, Register,
};

/// How far into a function a probe may move.
const MAX_PROLOGUE_INSTRUCTIONS: usize = 8;

/// What the probe at a site needs preserved.
#[derive(Clone, Copy, Debug)]
pub struct Needs<'a> {
    /// Argument registers the probe reads, as 64-bit registers (`RDI`, ...).
    pub arguments: &'a [Register],
    /// Whether a return probe shares the site.
    pub return_probe: bool,
}

/// Where to probe a function, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Bytes from the function's first instruction.
    pub offset: u64,
    /// Whether the kernel emulates the instruction there (cheap) or must
    /// single-step it.
    pub emulated: bool,
}

/// Chooses the probe site in a function whose machine code starts with `code`.
pub fn choose(code: &[u8], needs: Needs<'_>) -> Site {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut instruction = Instruction::default();

    for _ in 0..MAX_PROLOGUE_INSTRUCTIONS {
        if !decoder.can_decode() {
            break;
        }
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        if is_emulated(&instruction) {
            return Site {
                offset: instruction.ip(),
                emulated: true,
            };
        }
        if instruction.flow_control() != FlowControl::Next {
            break;
        }
        let clobbers = info.info(&instruction).used_registers().iter().any(|used| {
            let written = matches!(
                used.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            );
            let register = used.register().full_register();
            written
                && (needs.arguments.contains(&register)
                    || (needs.return_probe && register == Register::RSP))
        });
        if clobbers {
            break;
        }
    }

    Site {
        offset: 0,
        emulated: entry_is_emulated(code),
    }
}

/// Whether the kernel emulates the function's first instruction.
pub fn entry_is_emulated(code: &[u8]) -> bool {
    Decoder::with_ip(64, code, 0, DecoderOptions::NONE)
        .iter()
        .next()
        .is_some_and(|first| is_emulated(&first))
}

/// Whether the kernel's x86 uprobe code emulates this instruction instead of
/// single-stepping it.
fn is_emulated(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Nop
        || instruction.code() == Code::Push_r64
        || instruction.is_jmp_short_or_near()
        || instruction.is_jcc_short_or_near()
        || instruction.is_call_near()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `rdi`, with no return probe.
    const FIRST_ARGUMENT: Needs<'static> = Needs {
        arguments: &[Register::RDI],
        return_probe: false,
    };

    fn site(offset: u64, emulated: bool) -> Site {
        Site { offset, emulated }
    }

    #[test]
    fn test_then_jump_moves_to_the_jump() {
        // test rdi, rdi; je +0xbf; push rbp
        let code = [0x48, 0x85, 0xff, 0x0f, 0x84, 0xbf, 0, 0, 0, 0x55];
        assert_eq!(choose(&code, FIRST_ARGUMENT), site(3, true));
    }

    #[test]
    fn push_at_entry_stays_at_entry() {
        // push r12; push rbp
        let code = [0x41, 0x54, 0x55];
        let needs = Needs {
            arguments: &[Register::RDI],
            return_probe: true,
        };
        assert_eq!(choose(&code, needs), site(0, true));
    }

    #[test]
    fn written_argument_keeps_the_probe_at_entry() {
        // mov edi, 1; jmp +0
        let code = [0xbf, 1, 0, 0, 0, 0xeb, 0x00];
        assert_eq!(choose(&code, FIRST_ARGUMENT), site(0, false));
    }

    #[test]
    fn stack_change_keeps_a_return_probe_at_entry() {
        // sub rsp, 0x58; jmp +0
        let code = [0x48, 0x83, 0xec, 0x58, 0xeb, 0x00];
        let needs = Needs {
            arguments: &[Register::RDI],
            return_probe: true,
        };
        assert_eq!(choose(&code, needs), site(0, false));
        // Without a return probe the stack pointer may move.
        assert_eq!(choose(&code, FIRST_ARGUMENT), site(4, true));
    }

    #[test]
    fn compare_of_memory_then_push_moves_to_the_push() {
        // cmp byte [rip+0x140201], 0; push r12 (posix_memalign's prologue)
        let code = [0x80, 0x3d, 0x01, 0x02, 0x14, 0x00, 0x00, 0x41, 0x54];
        let needs = Needs {
            arguments: &[Register::RDI, Register::RSI, Register::RDX],
            return_probe: true,
        };
        assert_eq!(choose(&code, needs), site(7, true));
    }

    #[test]
    fn syscall_stops_the_search() {
        // mov eax, 11; syscall; jmp +0 (munmap)
        let code = [0xb8, 0x0b, 0, 0, 0, 0x0f, 0x05, 0xeb, 0x00];
        assert_eq!(choose(&code, FIRST_ARGUMENT), site(0, false));
    }
}
