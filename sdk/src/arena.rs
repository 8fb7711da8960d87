//! An arena allocator for plugins: every call runs in a fresh instance that is thrown away
//! afterwards, so nothing allocated during a call needs to be freed before it ends.
//!
//! Allocation is a pointer bump; freeing is a no-op except for the most recent allocation,
//! which is popped (so a growing `Vec` or `String` extends in place). Memory grows a WebAssembly
//! page run at a time and is never reused within a call, so a call's peak memory is the sum of
//! what it allocated: right for transforms over a batch, wrong for a connector that loops over
//! many large upstream responses in one call (keep the default allocator there). The host's
//! memory limit still applies.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: weft_sdk::arena::Arena = weft_sdk::arena::Arena::new();
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

#[cfg(target_arch = "wasm32")]
const PAGE: usize = 64 * 1024;
/// Grow at least this much at a time: fewer `memory.grow` calls.
#[cfg(target_arch = "wasm32")]
const MIN_GROWTH: usize = 4 * PAGE;

/// A bump allocator over linear memory; see the module docs.
pub struct Arena {
    next: Cell<usize>,
    end: Cell<usize>,
    last: Cell<usize>,
}

// SAFETY: WebAssembly plugins are single-threaded; the arena is never shared across threads.
unsafe impl Sync for Arena {}

impl Arena {
    /// An empty arena; `const` so it can initialise the `#[global_allocator]` static.
    pub const fn new() -> Self {
        Arena {
            next: Cell::new(0),
            end: Cell::new(0),
            last: Cell::new(usize::MAX),
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn grow(&self, at_least: usize) -> bool {
        unsafe extern "C" {
            /// Where the linker put the end of static data: the heap starts here.
            static __heap_base: u8;
        }
        if self.end.get() == 0 {
            // First use: the free end of the initial memory is already mapped; take it before
            // growing (a fresh page costs a fault, growing a system call).
            let heap = (&raw const __heap_base) as usize;
            let size = core::arch::wasm32::memory_size(0) * PAGE;
            self.next.set(heap);
            self.end.set(size);
            if size.saturating_sub(heap) >= at_least {
                return true;
            }
        }
        let bytes = at_least.max(MIN_GROWTH).div_ceil(PAGE) * PAGE;
        let previous = core::arch::wasm32::memory_grow(0, bytes / PAGE);
        if previous == usize::MAX {
            return false;
        }
        let start = previous * PAGE;
        if self.end.get() != start {
            // Memory grown by someone else sits in between: start a new run.
            self.next.set(start);
        }
        self.end.set(start + bytes);
        true
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn grow(&self, _at_least: usize) -> bool {
        false
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align();
        let mut start = self.next.get().next_multiple_of(align);
        if start == 0 || start + layout.size() > self.end.get() {
            if !self.grow(layout.size() + align) {
                return core::ptr::null_mut();
            }
            start = self.next.get().next_multiple_of(align);
        }
        self.next.set(start + layout.size());
        self.last.set(start);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent allocation can be given back.
        if ptr as usize == self.last.get() && ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
            self.last.set(usize::MAX);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        // The most recent allocation grows or shrinks in place when it fits.
        if start == self.last.get()
            && start + layout.size() == self.next.get()
            && start + new_size <= self.end.get()
        {
            self.next.set(start + new_size);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the new layout has the old alignment and a non-zero size.
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for `layout.size()` bytes and do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
        }
        new
    }
}
