// The migrations are compiled into this crate; rebuild it when any of them changes.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
