module syncscope/workloads/goleak

go 1.19
