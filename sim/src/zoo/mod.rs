//! Models of the historical refresh algorithms (the bug zoo), behind the
//! same [`baton_core::RefreshMachine`] interface as baton's own machine.
