//! A PNG whose header claims 100000x100000 pixels is refused from the header alone: fast, and without
//! allocating anything like its 30 GB. Alone in its test binary so the allocation counter sees only it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use facerec_vision::{decode_image, IngestError, IngestLimits};
use support::png_chunk;

mod support;

struct PeakCounting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakCounting = PeakCounting;

#[test]
fn png_bomb_header_is_refused_fast_without_allocating() {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    bomb.extend(png_chunk(b"IHDR", &ihdr));
    bomb.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    bomb.extend(png_chunk(b"IEND", &[]));

    let before = CURRENT.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let started = Instant::now();
    let result = decode_image(&bomb, &IngestLimits::default());
    let elapsed = started.elapsed();
    let peak_extra = PEAK.load(Ordering::SeqCst) - before;

    assert!(
        matches!(
            result,
            Err(IngestError::DimensionsTooLarge {
                width: 100_000,
                height: 100_000,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(result.unwrap_err().code(), "image_dimensions_too_large");
    assert!(
        peak_extra < 1 << 20,
        "allocated {peak_extra} bytes to refuse a header"
    );
    assert!(elapsed.as_millis() < 1000, "took {elapsed:?}");
}
