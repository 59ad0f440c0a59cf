module syncscope/workloads/goatomic

go 1.19
