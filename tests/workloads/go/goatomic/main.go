// goatomic: goroutines adding to one global int64 through sync/atomic
// functions the compiler cannot inline (called through function values), so
// the cache-line collector's atomic-call uprobes (Go's ABIInternal: the
// address in RAX) have real calls to count.
//
// Prints on stdout, one per line:
//
//	ready pid=1234
//	counter addr=0xc000012345
//
// then waits for a line on stdin, runs until stdin closes (or a second
// line), and prints "done ops=N".
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

var (
	counter int64
	typed   atomic.Int64
	stop    atomic.Bool
)

func main() {
	runtime.GOMAXPROCS(2)
	fmt.Printf("ready pid=%d\n", os.Getpid())
	fmt.Printf("counter addr=%#x\n", uintptr(unsafeAddr(&counter)))
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return
	}
	// Function values: the compiler cannot inline through them, so every
	// call reaches the out-of-line sync/atomic function.
	add := atomic.AddInt64
	addTyped := typed.Add
	var wg sync.WaitGroup
	var ops atomic.Int64
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for !stop.Load() {
				for i := 0; i < 1000; i++ {
					add(&counter, 1)
					addTyped(1)
				}
				n += 1000
			}
			ops.Add(n)
		}()
	}
	in.ReadString('\n')
	stop.Store(true)
	wg.Wait()
	fmt.Printf("done ops=%d\n", ops.Load())
}
