// Command udf-uppercase is a Streaming Runtime UDF written in Go: it upper-cases
// each payload and replies with the single header "x-udf-lang: go", like the
// seed's udf-uppercase-go. Built from the same MessageService.proto as the
// Python SDK, it shows the protocol carries nothing language specific.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "iotmonitoring/udf/messageservice"
)

const serviceName = "org.springframework.cloud.function.grpc.MessagingService"

type server struct {
	pb.UnimplementedMessagingServiceServer
}

// upperCase is the UDF: the payload upper-cased, headers replaced.
func upperCase(in *pb.GrpcMessage) (*pb.GrpcMessage, error) {
	if !utf8.Valid(in.GetPayload()) {
		return nil, status.Error(codes.InvalidArgument, "payload is not UTF-8 text")
	}
	return &pb.GrpcMessage{
		Payload: []byte(strings.ToUpper(string(in.GetPayload()))),
		Headers: map[string]string{"x-udf-lang": "go"},
	}, nil
}

func (s *server) RequestReply(ctx context.Context, in *pb.GrpcMessage) (*pb.GrpcMessage, error) {
	return upperCase(in)
}

func (s *server) ServerStream(in *pb.GrpcMessage, stream grpc.ServerStreamingServer[pb.GrpcMessage]) error {
	out, err := upperCase(in)
	if err != nil {
		return err
	}
	return stream.Send(out)
}

func (s *server) BiStream(stream grpc.BidiStreamingServer[pb.GrpcMessage, pb.GrpcMessage]) error {
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		out, err := upperCase(in)
		if err != nil {
			return err
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

// ClientStream concatenates the upper-cased payloads into one reply.
func (s *server) ClientStream(stream grpc.ClientStreamingServer[pb.GrpcMessage, pb.GrpcMessage]) error {
	var joined []byte
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&pb.GrpcMessage{Payload: joined, Headers: map[string]string{"x-udf-lang": "go"}})
		}
		if err != nil {
			return err
		}
		out, err := upperCase(in)
		if err != nil {
			return err
		}
		joined = append(joined, out.Payload...)
	}
}

func main() {
	port := flag.Int("port", 55554, "port to listen on")
	host := flag.String("host", "0.0.0.0", "address to listen on")
	flag.Parse()

	address := fmt.Sprintf("%s:%d", *host, *port)
	listener, err := net.Listen("tcp", address)
	if err != nil {
		log.Printf("cannot listen on %s: %v", address, err)
		os.Exit(2)
	}
	grpcServer := grpc.NewServer()
	pb.RegisterMessagingServiceServer(grpcServer, &server{})
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthServer.SetServingStatus(serviceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(grpcServer, healthServer)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-signals
		log.Printf("UDF udf-uppercase (go) shutting down on %v", sig)
		healthServer.Shutdown()
		grpcServer.GracefulStop()
	}()

	log.Printf("UDF udf-uppercase (go) serving %s on %s", serviceName, listener.Addr())
	if err := grpcServer.Serve(listener); err != nil {
		log.Printf("serve: %v", err)
		os.Exit(1)
	}
	log.Printf("UDF udf-uppercase (go) stopped")
}
