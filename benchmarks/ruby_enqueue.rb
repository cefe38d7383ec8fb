# The Ruby side of benchmarks/pg_latency.py: a Rails-like app enqueueing jobs one by one.
# Usage: DJ_DATABASE=postgresql://u:p@127.0.0.1:5432/db ruby benchmarks/ruby_enqueue.rb COUNT
# Enqueues COUNT LatencyJob rows with Delayed::Job.enqueue, 0.05 to 0.25 s apart (random).
require "uri"
require "logger"
require "active_record"
require "delayed_job"
require "delayed_job_active_record"

uri = URI.parse(ENV.fetch("DJ_DATABASE"))
ActiveRecord::Base.establish_connection(
  adapter: "postgresql", host: uri.host, port: uri.port || 5432, username: uri.user,
  password: uri.password.to_s, database: uri.path.sub("/", "")
)
ActiveRecord::Base.logger = nil
Delayed::Worker.logger = Logger.new(File::NULL)

LatencyJob = Struct.new(:n) do
  def perform; end
end

count = Integer(ARGV.fetch(0))
random = Random.new(42)
count.times do |n|
  Delayed::Job.enqueue(LatencyJob.new(n))
  sleep(0.05 + random.rand * 0.2)
end
puts "enqueued #{count}"
