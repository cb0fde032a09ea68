//! A millisecond clock for AT deadlines: [`now_ms`].
//!
//! Time is read from hardware, not counted in interrupts: timer 1 of the CMSDK APB dual timer
//! runs free, 32 bits wide, counting down at the peripheral clock / 16 (1.5625 MHz at 25 MHz),
//! and [`now_ms`] turns how far it has counted into milliseconds, extending it to 64 bits by
//! noticing each wrap (every ~45 minutes). A millisecond tick counted by an interrupt handler
//! loses ticks whenever two fall due before the core takes the first (under QEMU it ran ~20%
//! slow while the core polled the UART); a counter read on demand cannot.
//!
//! A wrap is only noticed by a call to [`now_ms`], so the SysTick exception calls it ten times a
//! second: a late or lost SysTick costs nothing, as long as one comes per wrap period.

use core::cell::Cell;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;

use crate::mmio::Registers;

// Timer 1 of the dual timer (CMSDK TRM; QEMU: hw/timer/cmsdk-apb-dualtimer.c).
const LOAD: usize = 0x00;
const VALUE: usize = 0x04;
const CONTROL: usize = 0x08;
const CONTROL_SIZE_32: u32 = 1 << 1;
const CONTROL_PRESCALE_16: u32 = 0b01 << 2;
const CONTROL_ENABLE: u32 = 1 << 7;
/// The counter's prescaler (CONTROL_PRESCALE_16).
const PRESCALE: u64 = 16;

/// How often SysTick looks at the counter, per second.
const REFRESH_HZ: u32 = 10;

/// The clock's state, once [`start`] ran.
struct Counter {
    regs: Registers,
    /// Counter ticks per second.
    ticks_per_s: u64,
    /// Ticks counted before the last wrap we noticed (a multiple of 2^32).
    wrapped: u64,
    /// How far the counter had counted at the last look.
    last: u32,
}

static COUNTER: Mutex<Cell<Option<Counter>>> = Mutex::new(Cell::new(None));

/// Starts the counter on the dual timer's `regs` (peripheral clock `pclk_hz`) and the SysTick
/// that keeps watching it (core clock `core_hz`).
pub fn start(regs: Registers, pclk_hz: u32, mut syst: SYST, core_hz: u32) {
    regs.write(CONTROL, CONTROL_SIZE_32);
    // In free-running mode a LOAD write sets the count; it then wraps from 0 to 0xFFFF_FFFF.
    regs.write(LOAD, u32::MAX);
    regs.write(
        CONTROL,
        CONTROL_SIZE_32 | CONTROL_PRESCALE_16 | CONTROL_ENABLE,
    );
    let counter = Counter {
        regs,
        ticks_per_s: u64::from(pclk_hz) / PRESCALE,
        wrapped: 0,
        last: 0,
    };
    critical_section::with(|cs| COUNTER.borrow(cs).set(Some(counter)));

    // SysTick's reload register has 24 bits: 25 MHz / 10 = 2_500_000 fits.
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(core_hz / REFRESH_HZ - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Milliseconds since [`start`] (0 before it).
pub fn now_ms() -> u64 {
    critical_section::with(|cs| {
        let cell = COUNTER.borrow(cs);
        let Some(mut counter) = cell.take() else {
            return 0;
        };
        // The timer counts down from 0xFFFF_FFFF.
        let counted = u32::MAX - counter.regs.read(VALUE);
        if counted < counter.last {
            counter.wrapped += 1 << 32;
        }
        counter.last = counted;
        let ticks = counter.wrapped + u64::from(counted);
        let ms = ticks * 1000 / counter.ticks_per_s;
        cell.set(Some(counter));
        ms
    })
}

#[exception]
fn SysTick() {
    now_ms();
}
