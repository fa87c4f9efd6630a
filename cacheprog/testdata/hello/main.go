package main

import (
	"example.com/hello/greet"
	"fmt"
)

func main() { fmt.Println(greet.Hello("world")) }
