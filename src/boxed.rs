//! Boxing a future where it is made.

/// `Box::pin(expr)` with `expr` built straight in its allocation: the box is allocated
/// first and the value written into it, where `Box::pin` makes the value on the stack and
/// then copies all of it into the box (a future of ~1 KB: ~120 instructions per copy, on
/// paths taken once per transaction or connection). A macro, not a function: a function's
/// argument would be made before the allocation and copied all the same.
macro_rules! pin_in_box {
    ($value:expr) => {
        ::std::boxed::Box::into_pin(::std::boxed::Box::write(
            ::std::boxed::Box::new_uninit(),
            $value,
        ))
    };
}

pub(crate) use pin_in_box;

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_boxed_future_runs_as_made() {
        let x = 20;
        let fut = pin_in_box!(async move { x + 1 });
        assert_eq!(fut.await, 21);
    }
}
