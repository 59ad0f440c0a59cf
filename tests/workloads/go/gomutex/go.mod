module syncscope/workloads/gomutex

go 1.19
