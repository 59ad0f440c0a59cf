// goleak: leaks goroutines at a steady rate, each parked forever in
// main.leakyWorker on a channel nobody ever sends to — the classic leak the
// agent's goroutine view must spot (count growing, all waiting in "chan
// receive" at the same creation site).
//
// Prints pid=N and ready at start; then, at each quiet point (after every
// batch, once the batch's goroutines have parked) and whenever it receives
// SIGUSR1, goroutines=N with N from runtime.NumGoroutine(); done at the end.
//
// -churn N instead measures goroutine state changes, for the benchmark: N
// rounds of starting 8 goroutines that each pass a token around a ring of
// channels 100 times, then exit; prints elapsed_ms=T and done. Every hand-off
// parks one goroutine and readies another: several runtime.casgstatus calls.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"
)

var (
	// Kept reachable so the leaked goroutines and their channels stay alive
	// for the whole run, as a real leak's would.
	leakedMu sync.Mutex
	leaked   []chan int
	out      sync.Mutex
)

func report() {
	out.Lock()
	defer out.Unlock()
	fmt.Printf("goroutines=%d\n", runtime.NumGoroutine())
}

// leakyWorker blocks forever: nothing ever sends on ch.
//
//go:noinline
func leakyWorker(ch chan int, started *sync.WaitGroup) {
	started.Done()
	v := <-ch
	fmt.Println("unreachable", v)
}

//go:noinline
func leakBatch(n int) {
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		ch := make(chan int)
		leakedMu.Lock()
		leaked = append(leaked, ch)
		leakedMu.Unlock()
		go leakyWorker(ch, &started)
	}
	started.Wait()
}

// churnRound starts `workers` goroutines in a ring of channels and passes a
// token around it `laps` times.
//
//go:noinline
func churnRound(workers, laps int) {
	ring := make([]chan int, workers)
	for i := range ring {
		ring[i] = make(chan int)
	}
	var wg sync.WaitGroup
	wg.Add(workers)
	for i := 0; i < workers; i++ {
		go func(in, out chan int, first bool) {
			defer wg.Done()
			for lap := 0; lap < laps; lap++ {
				if first && lap == 0 {
					out <- 0
				}
				v := <-in
				if !(first && lap == laps-1) {
					out <- v + 1
				}
			}
		}(ring[i], ring[(i+1)%workers], i == 0)
	}
	wg.Wait()
}

func main() {
	churn := flag.Int("churn", 0, "benchmark mode: rounds of goroutine churn, then exit")
	rate := flag.Int("rate", 100, "goroutines leaked per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to run (0: until killed)")
	interval := flag.Duration("interval", time.Second, "time between leak batches (quiet points)")
	max := flag.Int("max", 100000, "stop leaking after this many goroutines")
	flag.Parse()

	if *churn > 0 {
		fmt.Printf("pid=%d\n", os.Getpid())
		start := time.Now()
		for i := 0; i < *churn; i++ {
			churnRound(8, 100)
		}
		fmt.Printf("elapsed_ms=%.3f\n", float64(time.Since(start).Microseconds())/1000)
		fmt.Println("done")
		return
	}

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			report()
		}
	}()

	fmt.Printf("pid=%d\n", os.Getpid())
	fmt.Println("ready")
	report()

	perBatch := int(float64(*rate) * interval.Seconds())
	if perBatch < 1 {
		perBatch = 1
	}
	var deadline <-chan time.Time
	if *duration > 0 {
		deadline = time.After(*duration)
	}
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	total := 0
	for {
		select {
		case <-deadline:
			report()
			fmt.Println("done")
			return
		case <-ticker.C:
			n := perBatch
			if total+n > *max {
				n = *max - total
			}
			if n > 0 {
				leakBatch(n)
				total += n
			}
			// Let the batch reach its channel receive before counting.
			time.Sleep(10 * time.Millisecond)
			report()
		}
	}
}
