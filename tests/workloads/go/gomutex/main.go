// gomutex: goroutines contending on one global sync.Mutex (or, with -rw, a
// writer waiting behind readers on a sync.RWMutex), so the agent's Go lock
// probes (uprobes on sync.(*Mutex).lockSlow and friends) have something to
// measure. Go's own mutex profile (-pprof) is the anchor to compare against.
//
// Prints on stdout, one per line, before contention starts:
//
//	pid=1234
//	mutex_addr=0xc000012345      (or rwmutex_addr=… with -rw)
//	ready
//
// and when done: acquisitions=N, then done.
//
// -light adds two goroutines contending, briefly, on a second mutex
// (lightly, in contendLight): the profile-agreement test checks that both Go
// and the agent name contendMutex's mutex as the dominating one. -depth N
// makes every goroutine recurse N frames (with a large frame each) before
// each Lock, and one goroutine force GCs (which shrink stacks): thousands of
// stack growths and moves while the probes are attached.
// -wait holds the start until a line arrives on stdin, so a tracer can
// attach after reading the addresses and before the first Lock. -pair makes
// two mutexes that share one cache line contended, each by its own two
// goroutines wired to their own OS threads (pair_addr= is the first mutex,
// pair_line= its line): false sharing as the cache-line collector sees it,
// found through the Go lock probes' hints.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

var (
	// The lock everyone fights over; its address is what the agent reports.
	contended sync.Mutex
	shared    uint64

	rw       sync.RWMutex
	rwShared uint64

	// The second, lightly contended mutex of -light.
	light       sync.Mutex
	lightShared uint64

	acquisitions atomic.Uint64
	sink         atomic.Uint64

	// -pair: candidates for two adjacent mutexes; main picks the first
	// element whose two mutexes fall in one 64-byte line (the array is only
	// 8-byte aligned).
	pairs [8]struct{ a, b sync.Mutex }
)

// spin burns roughly d of CPU without sleeping, so a lock holder keeps the
// lock long enough for others to queue behind it (and park in lockSlow).
//
//go:noinline
func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		for i := 0; i < 100; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink.Add(x)
}

// contendMutex is the function the tests look for by name: each goroutine
// takes the global mutex, works while holding it, releases, works a little
// outside it, until the deadline.
//
//go:noinline
func contendMutex(deadline time.Time, hold, outside time.Duration, wg *sync.WaitGroup) {
	defer wg.Done()
	for time.Now().Before(deadline) {
		contended.Lock()
		shared++
		spin(hold)
		contended.Unlock()
		acquisitions.Add(1)
		if outside > 0 {
			spin(outside)
		}
	}
}

// contendLight takes the second mutex with a short hold: contended, but far
// less than the main one.
//
//go:noinline
func contendLight(deadline time.Time, wg *sync.WaitGroup) {
	defer wg.Done()
	for time.Now().Before(deadline) {
		light.Lock()
		lightShared++
		spin(2 * time.Microsecond)
		light.Unlock()
		spin(200 * time.Microsecond)
	}
}

// deepLock recurses `depth` frames of about 1 KiB each, then takes the
// contended mutex: the goroutine's stack has to grow (be copied) on the way
// down, and shrinks again at the next GC.
//
//go:noinline
func deepLock(depth int, pad [128]uint64, hold time.Duration) uint64 {
	if depth == 0 {
		contended.Lock()
		shared++
		spin(hold)
		contended.Unlock()
		acquisitions.Add(1)
		return pad[0]
	}
	var local [128]uint64
	local[depth%128] = uint64(depth)
	return deepLock(depth-1, local, hold) + pad[1]
}

//go:noinline
func contendDeep(deadline time.Time, depth int, hold time.Duration, wg *sync.WaitGroup) {
	defer wg.Done()
	var pad [128]uint64
	for time.Now().Before(deadline) {
		sink.Add(deepLock(depth, pad, hold))
	}
}

// contendPair takes one mutex of the pair from a goroutine locked to its own
// OS thread, so each mutex's state word is written by two threads only,
// never by the other mutex's. The cache-line collector tells writers apart
// by thread; free goroutines migrate between threads, which a 20 ms window
// mostly does not see, but a test should not depend on it.
//
//go:noinline
func contendPair(m *sync.Mutex, deadline time.Time, hold time.Duration, wg *sync.WaitGroup) {
	defer wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for time.Now().Before(deadline) {
		m.Lock()
		spin(hold)
		m.Unlock()
		acquisitions.Add(1)
	}
}

// sharedLinePair returns the first element of pairs whose two mutexes share
// a 64-byte line.
func sharedLinePair() *struct{ a, b sync.Mutex } {
	for i := range pairs {
		start := uintptr(unsafe.Pointer(&pairs[i].a))
		end := uintptr(unsafe.Pointer(&pairs[i].b)) + unsafe.Sizeof(pairs[i].b) - 1
		if start/64 == end/64 {
			return &pairs[i]
		}
	}
	panic("no pair of mutexes in one line")
}

// rwReader holds read locks back to back, overlapping with the other
// readers, so a writer in rw.Lock() waits for all of them to drain.
//
//go:noinline
func rwReader(deadline time.Time, hold time.Duration, wg *sync.WaitGroup) {
	defer wg.Done()
	for time.Now().Before(deadline) {
		rw.RLock()
		_ = atomic.LoadUint64(&rwShared)
		spin(hold)
		rw.RUnlock()
		acquisitions.Add(1)
	}
}

// rwWriter takes the write lock every `every`, waiting behind the readers.
//
//go:noinline
func rwWriter(deadline time.Time, every time.Duration, wg *sync.WaitGroup) {
	defer wg.Done()
	for time.Now().Before(deadline) {
		rw.Lock()
		atomic.AddUint64(&rwShared, 1)
		rw.Unlock()
		acquisitions.Add(1)
		time.Sleep(every)
	}
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to contend")
	goroutines := flag.Int("goroutines", 8, "number of contending goroutines (readers with -rw)")
	hold := flag.Duration("hold", 50*time.Microsecond, "time spent holding the lock per acquisition")
	outside := flag.Duration("outside", 5*time.Microsecond, "time spent outside the lock between acquisitions")
	rwMode := flag.Bool("rw", false, "readers and a writer on a sync.RWMutex instead of a sync.Mutex")
	writerEvery := flag.Duration("writer-every", time.Millisecond, "with -rw: pause between write locks")
	pprofFile := flag.String("pprof", "", "write Go's mutex profile (SetMutexProfileFraction(1)) to this file")
	lightMode := flag.Bool("light", false, "also contend, lightly, on a second mutex (in contendLight)")
	waitStdin := flag.Bool("wait", false, "after ready, wait for a line on stdin before contending (a tracer attaches first)")
	depth := flag.Int("depth", 0, "recurse this deep (about 1 KiB per frame) before each Lock, with forced GCs")
	pairMode := flag.Bool("pair", false, "two mutexes on one cache line, two thread-locked goroutines each")
	flag.Parse()

	if *pprofFile != "" {
		runtime.SetMutexProfileFraction(1)
	}
	fmt.Printf("pid=%d\n", os.Getpid())
	pair := sharedLinePair()
	if *rwMode {
		fmt.Printf("rwmutex_addr=%p\n", &rw)
	} else if *pairMode {
		fmt.Printf("pair_addr=%p\n", &pair.a)
		fmt.Printf("pair_line=%#x\n", uintptr(unsafe.Pointer(&pair.a))&^63)
	} else {
		fmt.Printf("mutex_addr=%p\n", &contended)
	}
	if *lightMode {
		fmt.Printf("light_addr=%p\n", &light)
	}
	fmt.Println("ready")
	if *waitStdin {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}

	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	if *rwMode {
		wg.Add(*goroutines + 1)
		for i := 0; i < *goroutines; i++ {
			go rwReader(deadline, *hold, &wg)
		}
		go rwWriter(deadline, *writerEvery, &wg)
	} else if *pairMode {
		wg.Add(4)
		for _, m := range []*sync.Mutex{&pair.a, &pair.a, &pair.b, &pair.b} {
			go contendPair(m, deadline, *hold, &wg)
		}
	} else if *depth > 0 {
		wg.Add(*goroutines)
		for i := 0; i < *goroutines; i++ {
			go contendDeep(deadline, *depth, *hold, &wg)
		}
		for time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			runtime.GC() // shrinks idle goroutine stacks: they grow again on the next descent
		}
	} else {
		wg.Add(*goroutines)
		for i := 0; i < *goroutines; i++ {
			go contendMutex(deadline, *hold, *outside, &wg)
		}
	}
	if *lightMode {
		wg.Add(2)
		go contendLight(deadline, &wg)
		go contendLight(deadline, &wg)
	}
	wg.Wait()

	if *pprofFile != "" {
		f, err := os.Create(*pprofFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gomutex:", err)
			os.Exit(1)
		}
		if err := pprof.Lookup("mutex").WriteTo(f, 0); err != nil {
			fmt.Fprintln(os.Stderr, "gomutex:", err)
			os.Exit(1)
		}
		f.Close()
	}
	fmt.Printf("acquisitions=%d\n", acquisitions.Load())
	fmt.Println("done")
}
