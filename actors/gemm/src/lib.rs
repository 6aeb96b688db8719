//! Safe, bounds-checked single-precision GEMM for the CPU compute device.
//!
//! `matrixmultiply` is the well-kept GEMM crate ndarray uses; its entry points are
//! `unsafe fn`s taking raw pointers and strides. The workspace forbids `unsafe_code`, so
//! this small crate holds the one call, checks every length first, and offers a safe,
//! row-major function instead.
//!
//! # Layout
//! - [`sgemm`]: `C ← α·A·B + β·C` on row-major `f32` slices.
//! - [`GemmError`]: a slice too short for the shapes given.
//!
//! # Example
//! ```
//! // [1 2] · [5 6] = [19 22]
//! // [3 4]   [7 8]   [43 50]
//! let a = [1.0, 2.0, 3.0, 4.0];
//! let b = [5.0, 6.0, 7.0, 8.0];
//! let mut c = [0.0f32; 4];
//! vortex_gemm::sgemm(2, 2, 2, 1.0, &a, &b, 0.0, &mut c).unwrap();
//! assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
//! ```

/// A slice is too short for the shapes given (or a shape overflows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GemmError {
    /// `operand` holds `actual` elements; the shape needs `needed`.
    #[error("GEMM operand {operand} holds {actual} elements, the shape needs {needed}")]
    TooShort {
        /// `"a"`, `"b"` or `"c"`.
        operand: &'static str,
        /// Elements the shape needs.
        needed: usize,
        /// Elements the slice holds.
        actual: usize,
    },
    /// `m·k`, `k·n` or `m·n` overflows `usize`, or a dimension exceeds `isize::MAX`.
    #[error("GEMM shape {m}x{k}x{n} is too large to address")]
    TooLarge {
        /// Rows of A and C.
        m: usize,
        /// Columns of A, rows of B.
        k: usize,
        /// Columns of B and C.
        n: usize,
    },
}

fn check(operand: &'static str, rows: usize, cols: usize, actual: usize) -> Result<(), GemmError> {
    let needed = rows.checked_mul(cols).ok_or(GemmError::TooLarge {
        m: rows,
        k: cols,
        n: 0,
    })?;
    if actual < needed {
        return Err(GemmError::TooShort {
            operand,
            needed,
            actual,
        });
    }
    Ok(())
}

/// `C ← α·A·B + β·C` with row-major `A` (`m×k`), `B` (`k×n`) and `C` (`m×n`).
///
/// With `β = 0`, `C`'s previous contents are ignored (NaN included). Single-threaded: the
/// caller splits rows across its own (pinned) threads.
#[allow(clippy::too_many_arguments)] // the BLAS signature, minus the strides
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) -> Result<(), GemmError> {
    check("a", m, k, a.len())?;
    check("b", k, n, b.len())?;
    check("c", m, n, c.len())?;
    let too_large = GemmError::TooLarge { m, k, n };
    let rsa = isize::try_from(k).map_err(|_| too_large.clone())?;
    let rsb = isize::try_from(n).map_err(|_| too_large.clone())?;
    isize::try_from(m).map_err(|_| too_large)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    #[allow(unsafe_code)]
    // SAFETY: `a` holds at least m·k elements, `b` at least k·n and `c` at least m·n
    // (checked above), so with row strides k, n, n and column stride 1 every element
    // matrixmultiply reads or writes lies inside its slice. `c` is a unique borrow, so it
    // does not alias `a` or `b`. All dimensions fit in `isize` (checked above).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            1,
            b.as_ptr(),
            rsb,
            1,
            beta,
            c.as_mut_ptr(),
            rsb,
            1,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                    .sum();
            }
        }
        c
    }

    #[test]
    fn matches_a_float64_reference_on_odd_shapes() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 128, 10)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
                .collect();
            let mut c = vec![f32::NAN; m * n];
            sgemm(m, k, n, 1.0, &a, &b, 0.0, &mut c).unwrap();
            let expected = reference(m, k, n, &a, &b);
            for (got, want) in c.iter().zip(&expected) {
                assert!(
                    (f64::from(*got) - want).abs() < 1e-4,
                    "{m}x{k}x{n}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn beta_one_accumulates() {
        let mut c = [1.0f32];
        sgemm(1, 1, 1, 2.0, &[3.0], &[4.0], 1.0, &mut c).unwrap();
        assert_eq!(c, [25.0]);
    }

    #[test]
    fn short_operands_are_errors_not_overruns() {
        let mut c = [0.0f32; 4];
        let error = sgemm(2, 2, 2, 1.0, &[1.0; 3], &[1.0; 4], 0.0, &mut c).unwrap_err();
        assert_eq!(
            error,
            GemmError::TooShort {
                operand: "a",
                needed: 4,
                actual: 3
            }
        );
        let error = sgemm(2, 2, 2, 1.0, &[1.0; 4], &[1.0; 4], 0.0, &mut c[..3]).unwrap_err();
        assert!(matches!(error, GemmError::TooShort { operand: "c", .. }));
    }
}
