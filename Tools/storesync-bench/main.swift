print("storesync-bench")
