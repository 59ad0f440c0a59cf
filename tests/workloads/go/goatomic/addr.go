package main

import "unsafe"

func unsafeAddr(p *int64) unsafe.Pointer { return unsafe.Pointer(p) }
